"""The Realtime protocol as rtedge speaks it, shared by the daemon and the local peer.

``catalog`` (names), ``strict_session`` and ``strict_client`` (strict models the peer validates
against) are generated from the ``openai`` package by ``scripts/gen_protocol.py``; ``server``
(tolerant typed server events), ``client`` (the events the daemon sends) and ``jsonlimits``
(bounded decoding) are written by hand. Nothing here imports ``openai``.
"""
