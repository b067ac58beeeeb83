"""Automatic payment-pause triggers: card key tones heard on the caller's side
(``dtmf_trigger``) and a payment application's window taking focus (``focus``).

PCI guidance: a manual pause fails because people forget. These start the enforced payment
pause on their own; only the agent (or the control API) ends it. See docs/triggers.md.
"""
