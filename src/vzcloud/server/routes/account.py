"""GET /account: quota and id."""

from __future__ import annotations

from typing import Any

from vzcloud.api.models import Account
from vzcloud.server.app import Ctx
from vzcloud.server.routes import handler


@handler("account")
def account(ctx: Ctx, args: dict[str, Any]) -> Account:
    acct = ctx.account
    return Account(id=acct.user_id, quota=acct.quota, quota_used=ctx.store.quota_used(acct.id))
