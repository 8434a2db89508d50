"""``iamctl mail list`` / ``iamctl mail show ID``: read the emails the local SMTP sink saved."""

from __future__ import annotations

from pathlib import Path

import click

from . import mailbox

SHOWN_HEADERS = ("Message-ID", "Date", "From", "To", "Cc", "X-RcptTo", "Subject")


def _mail_dir(ctx: click.Context) -> Path:
    return ctx.obj or mailbox.default_mail_dir()


@click.group("mail")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
              default=None,
              help="where the SMTP sink saves messages (default: $MAIL_DIR, else "
                   "$PORTICO_VAR_DIR/mail)")
@click.pass_context
def mail(ctx: click.Context, directory: Path | None) -> None:
    """Read the emails saved by the local SMTP sink of `make run`."""
    ctx.obj = directory


@mail.command("list")
@click.pass_context
def list_messages(ctx: click.Context) -> None:
    """List the saved messages, newest first: id, date, to, subject."""
    directory = _mail_dir(ctx)
    rows = mailbox.summaries(directory)
    if not rows:
        click.echo(f"no messages in {directory}")
        return
    for row in rows:
        click.echo(f"{row.id}  {row.date}  {row.to}  {row.subject}")


@mail.command("show")
@click.argument("message_id")
@click.option("--html", is_flag=True, help="print the HTML part instead of the plain-text one")
@click.pass_context
def show(ctx: click.Context, message_id: str, html: bool) -> None:
    """Print the headers and the decoded body of MESSAGE_ID (full id, short id or a prefix)."""
    directory = _mail_dir(ctx)
    try:
        full_id = mailbox.find(directory, message_id)
    except mailbox.MessageNotFound as exc:
        raise click.ClickException(str(exc)) from None
    message = mailbox.read(directory, full_id)
    for name in SHOWN_HEADERS:
        value = message.get(name)
        if value is not None:
            click.echo(f"{name}: {value}")
    click.echo("")
    text = mailbox.body(message, html=html)
    if text is None:
        raise click.ClickException(f"message {full_id} has no {'HTML' if html else 'plain-text'} part")
    click.echo(text.rstrip("\n"))


commands = [mail]
