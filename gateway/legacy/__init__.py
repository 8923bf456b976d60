"""Serve validators that still use the bittensor <= 10 ``Dendrite`` (the legacy axon wire protocol).

:class:`LegacyAxon` answers ``GET|POST /{SynapseName}`` for requests carrying
``bt_header_dendrite_*`` headers, verified with :mod:`protocol.auth.legacy`, in front of the
gateway's FastAPI app; the synapse classes validators use are in ``protocol/legacy.py``.
"""

from gateway.legacy._axon import LegacyAxon
from gateway.legacy._wire import LEGACY_SYNAPSES

__all__ = ["LEGACY_SYNAPSES", "LegacyAxon"]
