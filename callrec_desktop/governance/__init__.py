"""Governance: what the privacy notice promises about use of recordings, enforced.

``purposes``: the purposes (section 4 of the notice) for which a recording may be played or
exported. ``access_log``: an append-only record of every play, export and note, with who,
when, where and for which purpose. No Qt here (import-linter contract).
"""
