"""``channels.feishu`` from ``openclaw.json``: the Feishu app credentials used for follow-ups.

That section belongs to the Feishu channel plugin, not to agent-identity, so these Structs are
lenient: keys we do not use (``encryptKey``, ``connectionMode``, ``dmPolicy``, ...) are ignored,
while the keys we do use are type-checked like ours. Login-success and credential follow-up
messages are sent with these credentials when ``/identity`` was run from a Feishu chat.
"""

from __future__ import annotations

from agent_identity.config._base import ConfigStruct, Secret, Text

__all__ = ["FeishuAccount", "FeishuChannel"]


class FeishuAccount(ConfigStruct, frozen=True, kw_only=True, forbid_unknown_fields=False):
    """One entry of ``channels.feishu.accounts``.

    Attributes:
        app_id: Feishu app id (``cli_...``); falls back to the channel's when unset.
        app_secret: Feishu app secret; falls back to the channel's when unset.
        domain: ``feishu`` (China), ``lark`` (global) or a custom base URL.
        enabled: Whether the Feishu plugin runs this account (``None``: the plugin's default).
    """

    app_id: Text | None = None
    app_secret: Secret | None = None
    domain: Text | None = None
    enabled: bool | None = None


class FeishuChannel(ConfigStruct, frozen=True, kw_only=True, forbid_unknown_fields=False):
    """``channels.feishu``: the default app credentials plus optional per-account ones.

    Attributes:
        app_id: Default Feishu app id.
        app_secret: Default Feishu app secret.
        domain: ``feishu``, ``lark`` or a custom base URL.
        accounts: Account id to per-account credentials.
    """

    app_id: Text | None = None
    app_secret: Secret | None = None
    domain: Text | None = None
    accounts: dict[str, FeishuAccount] | None = None

    def credentials_for(self, account_id: str | None = None) -> tuple[str, str] | None:
        """The (app id, app secret) to send as, for an account or the channel default.

        An account's missing id or secret falls back to the channel's own.

        Args:
            account_id: The account the message came in on; ``None`` for the default.

        Returns:
            The pair, or ``None`` when no complete pair is configured.
        """
        app_id, app_secret = self.app_id, self.app_secret
        account = (self.accounts or {}).get(account_id) if account_id is not None else None
        if account is not None:
            app_id = account.app_id or app_id
            app_secret = account.app_secret or app_secret
        if app_id is None or app_secret is None:
            return None
        return app_id, app_secret
