"""Local development tools: the embedded runtime behind `make run`, the SMTP sink and
the mailbox commands (`iamctl mail ...`). Nothing here runs in production."""
