"""The local control API: softphones, CTI connectors, CRM and payment pages drive the desk.

- ``server``: ``ControlServer``, a small JSON-over-HTTP server on a loopback address that
  turns authenticated requests into ``Desk`` operations (source ``control_api``).
- ``token``: the bearer token, kept in the OS keyring.
- ``client``: ``ControlClient``, a stdlib client (used by ``callrec signal``).

Nothing is imported here, so ``callrec signal`` loads the client without the audio stack.
The wire format is documented in ``docs/control-api.md``.
"""
