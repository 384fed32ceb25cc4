"""Restarting and draining the service are admin powers (DESIGN §7)."""

from __future__ import annotations

from pathlib import Path

import pytest

from app import errors
from app.main import create_app
from app.settings import Settings
from tests.support.harness import caller

pytestmark = pytest.mark.anyio


async def test_restart_and_shutdown_prepare_refuse_a_caller_without_the_admin_scope(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path))
    lifecycle = app.state.runtime.holder.lifecycle
    reboot = app.state.runtime.holder.reboot
    member = caller("member", admin=False)
    with pytest.raises(errors.Forbidden) as restart:
        await lifecycle.restart(member, graceful=True, preserve_state=True, timeout=30, reason="manual_request")
    with pytest.raises(errors.Forbidden) as drain:
        await lifecycle.shutdown_prepare(
            member,
            check_active_tasks=True,
            check_database_state=True,
            check_client_connections=True,
            begin_drain=True,
            own_session_id=None,
        )
    assert (restart.value.code, restart.value.allowed, drain.value.allowed) == ("forbidden", ["admin"], ["admin"])
    assert reboot.state_changes == [reboot.state]  # nothing moved
