"""The simulated backend: host creation, the catalog's placement rules with NVML codes, persistence."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from mig_manager.catalog import GpuInstanceProfile, Placement, ProfileTable, default_catalog
from mig_manager.cli import parse_gpus
from mig_manager.devices import DeviceError, GpuBackend, MigMode, NvmlCode
from mig_manager.devices.simulated import SimulatedBackend, SimulationError, init_host, read_state
from mig_manager.spec import PciId

MakeHost = Callable[..., SimulatedBackend]
MODELS = [m.key for m in default_catalog().models]


def _code(exc: pytest.ExceptionInfo[DeviceError]) -> NvmlCode:
    return exc.value.code


def _profile(table: ProfileTable, name: str) -> GpuInstanceProfile:
    for p in table.gpu_instance_profiles:
        if str(p.name) == name:
            return p
    raise AssertionError(name)


# ---------------------------------------------------------------------------------------------------------------------
# Host creation


def test_init_host_identity(tmp_path: Path) -> None:
    path = tmp_path / "host.json"
    init_host(path, "H100x2,A100-40GB,0x1EB810DE")
    backend = SimulatedBackend(path)
    assert isinstance(backend, GpuBackend)
    gpus = backend.gpus()
    assert [g.index for g in gpus] == [0, 1, 2, 3]
    assert len({g.uuid for g in gpus}) == 4 and all(g.uuid.startswith("GPU-") for g in gpus)
    assert [g.pci_bus_id for g in gpus] == sorted(g.pci_bus_id for g in gpus)
    assert gpus[0].pci.primary() == PciId.parse("0x233010DE")
    assert gpus[0].pci.has_subsystem and gpus[0].pci.subsystem_vendor == 0x10DE
    assert gpus[0].product_name == "NVIDIA H100 80GB HBM3" and gpus[0].memory_mib == 81559
    assert gpus[2].product_name == "NVIDIA A100-SXM4-40GB"
    assert [g.mig_capable for g in gpus] == [True, True, True, False]
    # deterministic from path and index
    init_host(path, "H100x2,A100-40GB,0x1EB810DE")
    assert [g.uuid for g in SimulatedBackend(path).gpus()] == [g.uuid for g in gpus]


def test_init_host_accepts_node_gpus_and_subsystem_ids(tmp_path: Path) -> None:
    path = tmp_path / "host.json"
    init_host(path, parse_gpus("0x233010DE:0x16C110DEx2"))
    gpus = SimulatedBackend(path).gpus()
    assert [str(g.pci) for g in gpus] == ["0x233010DE:0x16C110DE"] * 2


def test_init_host_rejects_unknown_models(tmp_path: Path) -> None:
    with pytest.raises(SimulationError, match="unknown GPU model"):
        init_host(tmp_path / "h.json", "NoSuchGPU")


def test_missing_or_malformed_state(tmp_path: Path) -> None:
    with pytest.raises(SimulationError, match="no simulated host"):
        SimulatedBackend(tmp_path / "absent.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(SimulationError, match="not valid JSON"):
        SimulatedBackend(bad).gpus()
    bad.write_text('{"kind": "other"}')
    with pytest.raises(SimulationError, match="sim init"):
        SimulatedBackend(bad).gpus()


def test_state_persists_and_is_shared(make_host: MakeHost) -> None:
    a = make_host("H100x2", mig_enabled=True)
    table = a.profile_table(0)
    seven = _profile(table, "7g.80gb")
    a.create_gpu_instance(0, seven.id, seven.placements[0])
    b = SimulatedBackend(a.path)
    assert [g.profile_id for g in b.gpu_instances(0)] == [seven.id]
    assert b.gpu_instances(1) == []
    state = json.loads(a.path.read_text())
    assert state["gpus"][0]["gpu_instances"][0]["placement"] == {"start": 0, "size": 8}
    assert read_state(a.path) == state
    assert a.calls == ["profile_table", "create_gpu_instance"]
    assert b.calls == ["gpu_instances", "gpu_instances"]


def test_invalid_gpu_index(make_host: MakeHost) -> None:
    backend = make_host("H100")
    with pytest.raises(DeviceError) as exc:
        backend.mig_mode(3)
    assert _code(exc) is NvmlCode.INVALID_ARGUMENT
    with pytest.raises(DeviceError) as exc:
        backend.reset([0, 5])
    assert _code(exc) is NvmlCode.INVALID_ARGUMENT


# ---------------------------------------------------------------------------------------------------------------------
# MIG disabled / not capable


def test_mig_calls_need_mig_enabled(make_host: MakeHost) -> None:
    backend = make_host("A100-40GB")
    table = backend.profile_table(0)  # readable with MIG disabled
    p = table.gpu_instance_profiles[0]
    for call in (
        lambda: backend.gpu_instances(0),
        lambda: backend.create_gpu_instance(0, p.id, p.placements[0]),
        lambda: backend.destroy_gpu_instance(0, 1),
        lambda: backend.create_compute_instance(0, 1, 0, Placement(0, 1)),
        lambda: backend.destroy_compute_instance(0, 1, 0),
    ):
        with pytest.raises(DeviceError) as exc:
            call()
        assert _code(exc) is NvmlCode.NOT_SUPPORTED


def test_not_mig_capable(make_host: MakeHost) -> None:
    backend = make_host("0x1EB810DE")
    assert backend.processes(0) == []
    for call in (
        lambda: backend.mig_mode(0),
        lambda: backend.set_mig_mode(0, MigMode.ENABLED),
        lambda: backend.profile_table(0),
        lambda: backend.gpu_instances(0),
    ):
        with pytest.raises(DeviceError) as exc:
            call()
        assert _code(exc) is NvmlCode.NOT_SUPPORTED
    backend.reset([0])  # a GPU without MIG can still be reset


# ---------------------------------------------------------------------------------------------------------------------
# GPU-instance rules, for every catalog model


@pytest.mark.parametrize("model", MODELS)
def test_every_profile_at_every_placement(make_host: MakeHost, model: str) -> None:
    backend = make_host(model, mig_enabled=True)
    table = backend.profile_table(0)
    assert table is default_catalog().lookup(model).table
    for profile in table.gpu_instance_profiles:
        for placement in profile.placements:
            gi = backend.create_gpu_instance(0, profile.id, placement)
            assert (gi.profile_id, gi.placement, gi.compute_instances) == (profile.id, placement, ())
            assert backend.gpu_instances(0) == [gi]
            backend.destroy_gpu_instance(0, gi.id)
    assert backend.gpu_instances(0) == []


@pytest.mark.parametrize("model", MODELS)
def test_bad_profile_and_placement_are_invalid_argument(make_host: MakeHost, model: str) -> None:
    backend = make_host(model, mig_enabled=True)
    table = backend.profile_table(0)
    ids = {p.id for p in table.gpu_instance_profiles}
    unknown = next(i for i in range(100) if i not in ids)
    with pytest.raises(DeviceError) as exc:
        backend.create_gpu_instance(0, unknown, Placement(0, 1))
    assert _code(exc) is NvmlCode.INVALID_ARGUMENT
    for profile in table.gpu_instance_profiles:
        starts = {p.start for p in profile.placements}
        size = profile.placements[0].size
        bad = [
            Placement(next(s for s in range(table.memory_slices + 1) if s not in starts), size),  # not a start
            Placement(profile.placements[0].start, size + 1),  # wrong size
            Placement(table.memory_slices, size),  # off the GPU
        ]
        for placement in bad:
            with pytest.raises(DeviceError) as exc:
                backend.create_gpu_instance(0, profile.id, placement)
            assert _code(exc) is NvmlCode.INVALID_ARGUMENT, (profile.name, placement)
    assert backend.gpu_instances(0) == []


@pytest.mark.parametrize("model", MODELS)
def test_overlap_is_insufficient_resources(make_host: MakeHost, model: str) -> None:
    backend = make_host(model, mig_enabled=True)
    table = backend.profile_table(0)
    for first in table.gpu_instance_profiles:
        held = backend.create_gpu_instance(0, first.id, first.placements[-1])
        for other in table.gpu_instance_profiles:
            for placement in other.placements:
                if not placement.overlaps(held.placement):
                    continue
                with pytest.raises(DeviceError) as exc:
                    backend.create_gpu_instance(0, other.id, placement)
                assert _code(exc) is NvmlCode.INSUFFICIENT_RESOURCES, (first.name, other.name, placement)
        assert backend.gpu_instances(0) == [held]
        backend.destroy_gpu_instance(0, held.id)


@pytest.mark.parametrize("model", MODELS)
def test_max_count_is_insufficient_resources(make_host: MakeHost, model: str) -> None:
    backend = make_host(model, mig_enabled=True)
    table = backend.profile_table(0)
    for profile in table.gpu_instance_profiles:
        created = []
        free = list(profile.placements)
        while len(created) < profile.max_count:
            placement = free.pop(0)
            if any(placement.overlaps(gi.placement) for gi in created):
                continue
            created.append(backend.create_gpu_instance(0, profile.id, placement))
        assert len(created) == profile.max_count
        spare = [p for p in free if not any(p.overlaps(gi.placement) for gi in created)]
        for placement in spare:  # room left, but the profile is at its maximum
            with pytest.raises(DeviceError) as exc:
                backend.create_gpu_instance(0, profile.id, placement)
            assert _code(exc) is NvmlCode.INSUFFICIENT_RESOURCES
            assert "at most" in str(exc.value)
        for gi in created:
            backend.destroy_gpu_instance(0, gi.id)


def test_max_count_binds_where_room_remains(make_host: MakeHost) -> None:
    backend = make_host("H100", mig_enabled=True)
    me = _profile(backend.profile_table(0), "1g.10gb+me")
    backend.create_gpu_instance(0, me.id, Placement(0, 1))
    with pytest.raises(DeviceError) as exc:
        backend.create_gpu_instance(0, me.id, Placement(1, 1))
    assert _code(exc) is NvmlCode.INSUFFICIENT_RESOURCES


def test_full_balanced_layout_and_ids(make_host: MakeHost) -> None:
    backend = make_host("A100-40GB", mig_enabled=True)
    table = backend.profile_table(0)
    layout = [("3g.20gb", Placement(4, 4)), ("2g.10gb", Placement(0, 2)), ("1g.5gb", Placement(2, 1))]
    layout.append(("1g.5gb", Placement(3, 1)))
    made = [backend.create_gpu_instance(0, _profile(table, n).id, p) for n, p in layout]
    assert [gi.id for gi in made] == [1, 2, 3, 4]
    assert [gi.placement for gi in backend.gpu_instances(0)] == sorted(p for _, p in layout)
    with pytest.raises(DeviceError) as exc:  # every slice is taken
        backend.create_gpu_instance(0, _profile(table, "1g.5gb").id, Placement(6, 1))
    assert _code(exc) is NvmlCode.INSUFFICIENT_RESOURCES
    backend.destroy_gpu_instance(0, 2)
    again = backend.create_gpu_instance(0, _profile(table, "1g.10gb").id, Placement(0, 2))
    assert again.id == 2  # the smallest free id is reused


def test_rtx_pro_twelve_unit_axis(make_host: MakeHost) -> None:
    backend = make_host("RTX-PRO-6000", mig_enabled=True)
    table = backend.profile_table(0)
    two = _profile(table, "2g.48gb")
    one = _profile(table, "1g.24gb")
    backend.create_gpu_instance(0, two.id, Placement(0, 6))
    backend.create_gpu_instance(0, one.id, Placement(6, 3))
    backend.create_gpu_instance(0, one.id, Placement(9, 3))
    assert [(g.profile_id, str(g.placement)) for g in backend.gpu_instances(0)] == [
        (5, "0:6"),
        (14, "6:3"),
        (14, "9:3"),
    ]
    with pytest.raises(DeviceError) as exc:
        backend.create_gpu_instance(0, one.id, Placement(1, 3))
    assert _code(exc) is NvmlCode.INVALID_ARGUMENT


def test_coexists_only_with(make_host: MakeHost) -> None:
    backend = make_host("RTX-PRO-6000", mig_enabled=True)
    table = backend.profile_table(0)
    all_me, base = _profile(table, "1g.24gb+me.all"), _profile(table, "1g.24gb")
    no_me, two_no_me = _profile(table, "1g.24gb-me"), _profile(table, "2g.48gb-me")
    two_all_me = _profile(table, "2g.48gb+me.all")
    gi = backend.create_gpu_instance(0, all_me.id, Placement(0, 3))
    for profile, placement in ((base, Placement(3, 3)), (two_all_me, Placement(6, 6))):
        with pytest.raises(DeviceError) as exc:
            backend.create_gpu_instance(0, profile.id, placement)
        assert _code(exc) is NvmlCode.INSUFFICIENT_RESOURCES
        assert "coexists only with" in str(exc.value)
    backend.create_gpu_instance(0, no_me.id, Placement(3, 3))
    backend.create_gpu_instance(0, two_no_me.id, Placement(6, 6))
    assert len(backend.gpu_instances(0)) == 3
    # and the other way round: an +me.all profile cannot join a GPU holding a media-carrying profile
    for g in backend.gpu_instances(0):
        backend.destroy_gpu_instance(0, g.id)
    backend.create_gpu_instance(0, base.id, Placement(0, 3))
    with pytest.raises(DeviceError) as exc:
        backend.create_gpu_instance(0, all_me.id, Placement(3, 3))
    assert _code(exc) is NvmlCode.INSUFFICIENT_RESOURCES
    assert gi.id == 1


def test_unknown_instances_are_not_found(make_host: MakeHost) -> None:
    backend = make_host("H100", mig_enabled=True)
    with pytest.raises(DeviceError) as exc:
        backend.destroy_gpu_instance(0, 1)
    assert _code(exc) is NvmlCode.NOT_FOUND
    with pytest.raises(DeviceError) as exc:
        backend.create_compute_instance(0, 1, 0, Placement(0, 1))
    assert _code(exc) is NvmlCode.NOT_FOUND
    seven = _profile(backend.profile_table(0), "7g.80gb")
    gi = backend.create_gpu_instance(0, seven.id, Placement(0, 8))
    with pytest.raises(DeviceError) as exc:
        backend.destroy_compute_instance(0, gi.id, 0)
    assert _code(exc) is NvmlCode.NOT_FOUND
    assert exc.value.gpu == 0


# ---------------------------------------------------------------------------------------------------------------------
# Compute-instance rules


def _seven(backend: SimulatedBackend, name: str) -> int:
    profile = _profile(backend.profile_table(0), name)
    return backend.create_gpu_instance(0, profile.id, profile.placements[0]).id


@pytest.mark.parametrize("model", MODELS)
def test_full_size_compute_instance_in_every_profile(make_host: MakeHost, model: str) -> None:
    backend = make_host(model, mig_enabled=True)
    table = backend.profile_table(0)
    for profile in table.gpu_instance_profiles:
        gi = backend.create_gpu_instance(0, profile.id, profile.placements[0])
        ci_profile = table.compute_instance_profiles[profile.slices][profile.slices]
        ci = backend.create_compute_instance(0, gi.id, ci_profile.id, Placement(0, profile.slices))
        assert (ci.id, ci.profile_id, ci.placement) == (0, ci_profile.id, Placement(0, profile.slices))
        assert backend.gpu_instances(0)[0].compute_instances == (ci,)
        with pytest.raises(DeviceError) as exc:  # no room left in the GI
            backend.create_compute_instance(
                0, gi.id, table.compute_instance_profiles[profile.slices][1].id, Placement(0, 1)
            )
        assert _code(exc) is NvmlCode.INSUFFICIENT_RESOURCES
        with pytest.raises(DeviceError) as exc:  # a GI with compute instances cannot be destroyed
            backend.destroy_gpu_instance(0, gi.id)
        assert _code(exc) is NvmlCode.IN_USE
        backend.destroy_compute_instance(0, gi.id, ci.id)
        backend.destroy_gpu_instance(0, gi.id)


def test_compute_instance_capacity_and_overlap(make_host: MakeHost) -> None:
    backend = make_host("A100-40GB", mig_enabled=True)
    gi = _seven(backend, "7g.40gb")
    c1, c2, c3, c4 = 0, 1, 2, 3  # CI profile ids of 1c, 2c, 3c, 4c
    backend.create_compute_instance(0, gi, c3, Placement(0, 3))
    with pytest.raises(DeviceError) as exc:  # overlaps the 3c
        backend.create_compute_instance(0, gi, c2, Placement(2, 2))
    assert _code(exc) is NvmlCode.INSUFFICIENT_RESOURCES
    assert "overlaps" in str(exc.value)
    backend.create_compute_instance(0, gi, c3, Placement(3, 3))
    with pytest.raises(DeviceError) as exc:  # third 3c: at most 2
        backend.create_compute_instance(0, gi, c3, Placement(4, 3))
    assert _code(exc) is NvmlCode.INSUFFICIENT_RESOURCES
    with pytest.raises(DeviceError) as exc:  # 4c needs 4 slices, 1 is free
        backend.create_compute_instance(0, gi, c4, Placement(3, 4))
    assert _code(exc) is NvmlCode.INSUFFICIENT_RESOURCES
    last = backend.create_compute_instance(0, gi, c1, Placement(6, 1))
    assert last.id == 2
    assert [c.placement.start for c in backend.gpu_instances(0)[0].compute_instances] == [0, 3, 6]


def test_compute_instance_bad_profile_and_placement(make_host: MakeHost) -> None:
    backend = make_host("H100", mig_enabled=True)
    gi = _seven(backend, "7g.80gb")
    with pytest.raises(DeviceError) as exc:  # no 4c inside a 7g GI on Hopper
        backend.create_compute_instance(0, gi, 3, Placement(0, 4))
    assert _code(exc) is NvmlCode.INVALID_ARGUMENT
    for placement in (Placement(0, 2), Placement(6, 1 + 1), Placement(7, 1), Placement(-1, 1)):
        with pytest.raises(DeviceError) as exc:
            backend.create_compute_instance(0, gi, 0, placement)  # 1c: size 1, within 0:7
        assert _code(exc) is NvmlCode.INVALID_ARGUMENT
    two = _seven_slices_two(backend)
    with pytest.raises(DeviceError) as exc:  # a 2g GI offers 1c and 2c only
        backend.create_compute_instance(0, two, 2, Placement(0, 3))
    assert _code(exc) is NvmlCode.INVALID_ARGUMENT


def _seven_slices_two(backend: SimulatedBackend) -> int:
    for gi in backend.gpu_instances(0):
        backend.destroy_gpu_instance(0, gi.id)
    return _seven(backend, "2g.20gb")


def test_compute_instance_max_count(make_host: MakeHost) -> None:
    backend = make_host("A30", mig_enabled=True)
    gi = _seven(backend, "4g.24gb")
    for start in range(4):
        backend.create_compute_instance(0, gi, 0, Placement(start, 1))
    with pytest.raises(DeviceError) as exc:
        backend.create_compute_instance(0, gi, 0, Placement(0, 1))
    assert _code(exc) is NvmlCode.INSUFFICIENT_RESOURCES
