"""The local control API: softphones, CTI connectors, CRM and payment pages drive the desk.

- ``server``: ``ControlServer``, a small JSON-over-HTTP server on a loopback address that
  turns signed requests into ``Desk`` operations (source ``control_api``).
- ``protocol``: the HMAC challenge and signatures: the program on the port must prove it
  knows the token, which never crosses the socket.
- ``portfile``: where each user's instance publishes its port (one port per user).
- ``token``: the shared secret, kept in the OS keyring.
- ``client``: ``ControlClient``, a stdlib client (used by ``callrec signal``).

Nothing is imported here, so ``callrec signal`` loads the client without the audio stack.
The wire format is documented in ``docs/control-api.md``.
"""
