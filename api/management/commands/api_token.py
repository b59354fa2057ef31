"""manage.py api_token create|list|revoke USERNAME"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from api.services.tokens import api_token_create, api_token_revoke, api_tokens_of


class Command(BaseCommand):
    help = (
        "Personal API tokens: `create USERNAME [--name N]` prints the token alone on its "
        "last line (shown once); `list USERNAME`; `revoke USERNAME PREFIX`."
    )

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["create", "list", "revoke"])
        parser.add_argument("username")
        parser.add_argument("prefix", nargs="?", default="", help="revoke: the token's prefix")
        parser.add_argument("--name", default="cli", help="create: a label for the token")

    def handle(self, *args, action: str, username: str, prefix: str, name: str, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"no user {username!r}")
        if action == "create":
            token, secret = api_token_create(user=user, name=name)
            self.stdout.write(f"Token {token.prefix}… for {username}; it is shown only once:")
            self.stdout.write(secret)
        elif action == "list":
            for token in api_tokens_of(user=user):
                state = f"revoked {token.revoked_at:%Y-%m-%d}" if token.revoked_at else "active"
                used = f"{token.last_used_at:%Y-%m-%d %H:%M}" if token.last_used_at else "never"
                self.stdout.write(
                    f"{token.prefix}\t{token.name}\t{state}\tcreated {token.created_at:%Y-%m-%d}"
                    f"\tlast used {used}"
                )
        else:
            if not prefix:
                raise CommandError("give the prefix of the token to revoke (see `list`)")
            if not api_token_revoke(user=user, prefix=prefix):
                raise CommandError(f"{username} has no active token {prefix!r}")
            self.stdout.write(f"Revoked {prefix}.")
