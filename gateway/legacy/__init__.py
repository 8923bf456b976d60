"""Serve validators that still use the bittensor <= 10 ``Dendrite`` (the legacy axon wire protocol).

:func:`mount_legacy` adds one route to a gateway app that answers ``GET|POST /{SynapseName}``
for requests carrying ``bt_header_dendrite_*`` headers, verified with
:mod:`protocol.auth.legacy`; the synapse classes validators use are in ``protocol/legacy.py``.
"""

from gateway.legacy._routes import LEGACY_SCHEME, LegacyRoute, mount_legacy
from gateway.legacy._wire import LEGACY_SYNAPSES

__all__ = ["LEGACY_SCHEME", "LEGACY_SYNAPSES", "LegacyRoute", "mount_legacy"]
