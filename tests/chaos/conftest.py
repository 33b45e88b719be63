"""The chaos cluster: kubesim's default topology with the chart installed by the real helm (see chaos_cluster.py)."""

from __future__ import annotations

import pytest

pytest.register_assert_rewrite("chaos_cluster")
