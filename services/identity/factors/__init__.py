"""A user's factors beyond the password: TOTP (``totp.py``) and recovery codes
(``recovery_codes.py``); their tables are in ``models.py``."""
