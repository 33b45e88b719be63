"""The simulated GPU and the planner agree: every plan can be created at its placements, and every geometry the
simulated GPU accepted can be planned."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mig_manager.catalog import Placement, default_catalog
from mig_manager.devices import DeviceError, NvmlCode
from mig_manager.devices.simulated import SimulatedBackend
from mig_manager.errors import PlanError
from mig_manager.planner import plan

MakeHost = Callable[..., SimulatedBackend]
MODELS = [m.key for m in default_catalog().models]
SETTINGS = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _clear(backend: SimulatedBackend) -> None:
    for gi in backend.gpu_instances(0):
        for ci in gi.compute_instances:
            backend.destroy_compute_instance(0, gi.id, ci.id)
        backend.destroy_gpu_instance(0, gi.id)


@pytest.mark.parametrize("model", MODELS)
@SETTINGS
@given(data=st.data())
def test_every_plan_can_be_created(make_host: MakeHost, model: str, data: st.DataObject) -> None:
    table = default_catalog().lookup(model).table
    names = table.valid_names()
    request = data.draw(st.dictionaries(st.sampled_from(names), st.integers(1, 3), min_size=1, max_size=3))
    try:
        planned = plan(table, request)
    except PlanError:
        return
    backend = make_host(model, mig_enabled=True)
    for gi_plan in planned.instances:
        gi = backend.create_gpu_instance(0, gi_plan.profile.id, gi_plan.placement)
        for ci_plan in gi_plan.compute_instances:
            backend.create_compute_instance(0, gi.id, ci_plan.profile.id, ci_plan.placement)
    assert len(backend.gpu_instances(0)) == len(planned.instances)


@pytest.mark.parametrize("model", MODELS)
@SETTINGS
@given(data=st.data())
def test_every_accepted_geometry_can_be_planned(make_host: MakeHost, model: str, data: st.DataObject) -> None:
    table = default_catalog().lookup(model).table
    attempts = [(p, pl) for p in table.gpu_instance_profiles for pl in p.placements]
    order = data.draw(st.lists(st.sampled_from(attempts), min_size=1, max_size=10))
    backend = make_host(model, mig_enabled=True)
    for profile, placement in order:
        try:
            backend.create_gpu_instance(0, profile.id, placement)
        except DeviceError as exc:
            assert exc.code is NvmlCode.INSUFFICIENT_RESOURCES
    by_id = {p.id: p for p in table.gpu_instance_profiles}
    created = Counter(str(by_id[gi.profile_id].name) for gi in backend.gpu_instances(0))
    planned = plan(table, dict(created))
    assert Counter(str(i.profile.name) for i in planned.instances) == created
    # and the simulated GPU takes the planner's placements for it, from empty
    _clear(backend)
    for gi_plan in planned.instances:
        backend.create_gpu_instance(0, gi_plan.profile.id, gi_plan.placement)


def test_placement_bookkeeping_survives_interleaving(make_host: MakeHost) -> None:
    backend = make_host("A100-40GB", mig_enabled=True)
    one = backend.create_gpu_instance(0, 19, Placement(0, 1))
    backend.create_gpu_instance(0, 19, Placement(1, 1))
    backend.destroy_gpu_instance(0, one.id)
    backend.create_gpu_instance(0, 14, Placement(2, 2))
    with pytest.raises(DeviceError):
        backend.create_gpu_instance(0, 14, Placement(0, 2))  # slot 1 is still taken
    backend.create_gpu_instance(0, 19, Placement(0, 1))
    assert [str(g.placement) for g in backend.gpu_instances(0)] == ["0:1", "1:1", "2:2"]
