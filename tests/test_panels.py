"""Every notebook's widget panel is the shared one (hpolab.widgets), built from the notebook's
own parameters, with ranges the controls enforce themselves."""

import pytest

from hpolab import notebooks
from hpolab.studies import (
    estimator_atlas,
    fds_cifar,
    fds_noise,
    fds_schedules,
    fds_vs_hpo,
    hd_vs_decay,
    hozog_cleaning,
    hozog_logreg,
    hozog_schedules,
    jd_mnist,
    jd_sphere,
    local_sgd,
    stn,
)
from hpolab.widgets import RunPanel

PANELS = {
    "01_jd_sphere": jd_sphere.panel,
    "02_jd_mnist_activation": jd_mnist.panel,
    "03_hozog_logreg": hozog_logreg.logreg_panel,
    "04_hozog_dnn_lr": hozog_schedules.schedule_panel,
    "05_hozog_hypercleaning": hozog_cleaning.cleaning_panel,
    "06_hd_vs_decay": hd_vs_decay.panel,
    "07_lr_sensitivity": hd_vs_decay.panel,
    "08_fds_hypergradient_noise": fds_noise.panel,
    "09_fds_lr_schedules": fds_schedules.panel,
    "10_fds_cifar": fds_cifar.panel,
    "11_fds_vs_hpo": fds_vs_hpo.panel,
    "12_stn_best_response": stn.panel,
    "13_local_sgd": local_sgd.panel,
    "14_estimator_atlas": estimator_atlas.panel,
}


def choices(dropdown) -> list:
    return [o[1] if isinstance(o, tuple) else o for o in dropdown.options]


def test_every_notebook_has_a_panel_here():
    assert set(PANELS) == set(notebooks.available())


@pytest.mark.parametrize("name", sorted(PANELS))
def test_panel_is_built_from_the_notebooks_parameters(name):
    values = {key: p.default for key, p in notebooks.parameters(notebooks.find(name)).items()}
    values["scale"] = "smoke"
    panel = PANELS[name](values)
    assert isinstance(panel, RunPanel)
    assert panel.controls["device"].value == "cpu" and "cpu" in choices(panel.controls["device"])
    if "scale" in panel.controls:
        assert panel.controls["scale"].value == "smoke"
    for key in ("mu", "q"):
        if key in panel.controls and values.get(key):
            assert panel.controls[key].value == pytest.approx(values[key])
    if "p" in panel.controls:
        assert panel.controls["p"].value == pytest.approx(values["p_values"][0])
        assert 0 < panel.controls["p"].min and panel.controls["p"].max < 1
    selector = panel.controls[panel.selector]
    assert selector.value in choices(selector)
    for key in ("q", "W", "iterations"):
        if key in panel.controls:
            assert panel.controls[key].min >= 1


def test_device_dropdown_offers_auto_naming_its_choice_and_only_present_devices():
    from hpolab.devices import available_devices, resolve_device
    from hpolab.widgets import device_dropdown

    dropdown = device_dropdown("auto")
    assert dropdown.value == "auto"
    assert choices(dropdown) == ["auto", *available_devices()]
    assert dropdown.options[0][0] == f"auto ({resolve_device('auto')})"
    assert device_dropdown("cuda:7").value == "cpu" or "cuda:7" in available_devices()
