"""The ACL table is one table: what the docs list, what the cluster profile grants and what the
services' default group names need are the same."""

from __future__ import annotations

import re
from pathlib import Path

from monitor.settings import MonitorSettings
from personas.access import GROUP_PREFIXES, SERVICES, acl_bindings, acl_table_markdown
from personas.settings import Settings
from stream_app.settings import StreamSettings
from trainer.settings import TrainerSettings

ROOT = Path(__file__).resolve().parents[3]


def test_the_documented_table_is_the_one_in_code() -> None:
    text = (ROOT / "docs" / "deploying.md").read_text()
    documented = re.search(r"<!-- acl-table:.*?-->\n(.*?)\n<!-- /acl-table -->", text, re.S)
    assert documented is not None
    assert documented.group(1) == acl_table_markdown(Settings(_env_file=None))


def test_default_group_names_fall_under_the_granted_prefixes() -> None:
    settings = Settings(_env_file=None)
    assert StreamSettings().resolved_app_id(settings).startswith(GROUP_PREFIXES["stream"])
    assert MonitorSettings().group_id.startswith(GROUP_PREFIXES["monitor"])
    assert TrainerSettings().group_id.startswith(GROUP_PREFIXES["trainer"])


def test_every_service_has_a_user_and_only_allow_bindings() -> None:
    bindings = acl_bindings(Settings(_env_file=None))
    assert {user for user, _ in bindings} == set(SERVICES)
    for user, binding in bindings:
        assert binding.principal == f"User:{user}"
        assert binding.permission_type.name == "ALLOW"
