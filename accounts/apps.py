from django.apps import AppConfig
from django.db.models.signals import post_migrate


def ensure_role_groups(sender, using="default", **kwargs) -> None:
    """The role groups must always exist. Migration 0001 creates them; this
    recreates them after a database flush (as Django does for permissions)."""
    from django.contrib.auth.models import Group

    from accounts.roles import ALL_ROLES

    for name in ALL_ROLES:
        Group.objects.using(using).get_or_create(name=name)


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts and roles"

    def ready(self) -> None:
        # post_migrate is only sent for apps with models; accounts has none,
        # so listen for django.contrib.auth's.
        from django.apps import apps

        post_migrate.connect(ensure_role_groups, sender=apps.get_app_config("auth"))
