import pytest
import yaml

from prunetune.config import JobConfig, apply_overrides, load_config, validate_config

from prunetune.reference import reference
from prunetune.errors import ConfigError
from prunetune.spaces.schema import get_path

# A value different from the default in every section, nested sections included.
EVERY_SECTION = {
    "name": "roundtrip",
    "seed": 7,
    "data": {"name": "shapes", "image_size": 40, "channels": 1, "val_fraction": 0.25, "train_size": 300,
             "val_size": 100, "calibration_size": 64, "batch_size": 32, "eval_batch_size": 64, "augment": True,
             "crop_padding": 2, "crop_scale": None, "hflip": False, "eval_crop_fraction": None, "mean": [0.5],
             "std": [0.25], "transform": None, "device_resident": "never", "num_workers": 0, "root": "/data/x"},
    "model": {"name": "resnet18", "num_classes": 5, "checkpoint": "/ckpt.pt", "checkpoint_format": "state_dict",
              "kwargs": {"zero_init_residual": True}},
    "baseline": {"epochs": 3, "optimizer": "adamw", "lr": 0.001, "momentum": 0.8, "weight_decay": 0.01,
                 "lr_schedule": "constant", "warmup_epochs": 0, "label_smoothing": 0.1, "recalibrate_bn": False},
    "pruning": {"scope": "all", "include": ["features.*"], "exclude": ["classifier"], "criterion": "mac_aware",
                "group_reduction": "max", "mac_aware": {"base": "vbp", "alpha": 0.5, "beta": -0.25, "mode": "additive",
                                                                  "cost": "latency"},
                "schedule": {"kind": "geometric", "targets": [0.1, 0.15], "final_sparsity": 0.6, "steps": 4,
                             "mac_target": 0.3},
                "round_to": 8, "max_layer_ratio": 0.75, "compensation": True, "repair": "asr", "asr_lambda": 0.5,
                "recalibration_split": "val", "recalibration_samples": 128, "calibration_batches": 2,
                "mask_then_prune": True},
    "recovery": {"recalibrate_bn": False, "epochs": 4, "patience": 2, "optimizer": "sgd", "lr": 0.0003, "lr_high": 3e-05,
                 "lr_high_threshold": 0.21, "weight_decay": 1e-5, "lr_schedule": "cosine", "warmup_epochs": 1,
                 "kd_alpha": 0.55, "kd_temperature": 3.0, "variance_entropy_lambda": 0.01,
                 "sparse_pretrain_epochs": 2, "sparse_lambda": 0.001, "final_epochs": 3, "final_lr": 1e-05,
                 "teacher": {"name": "tiny_resnet", "checkpoint": "teacher.pt", "checkpoint_format": "state_dict",
                             "kwargs": {"width": 16}}},
    "stop": {"max_accuracy_drop": None, "min_accuracy": 0.84},
    "search": {"num_samples": 20, "sampler": "nsga2", "sampler_seed": 7, "reuse_actors": False, "objectives": "min_macs", "max_concurrent_trials": 4, "max_retries": 2,
               "cpus_per_trial": 0.5, "gpus_per_trial": 0.25, "space": {"recovery.lr": {"loguniform": [1e-5, 1e-3]}},
               "scheduler": "rungs", "rungs": {"levels": [0.75, 0.5, 0.25], "reduction_factor": 2.0, "grace": 4}},
    "storage": {"root": "s3://bucket/runs", "study_url": "sqlite:///study.db", "step_models": "best"},
    "runtime": {"device": "cuda:1", "precision": "fp32", "channels_last": False, "compile": True, "threads": 2},
    "latency": {"device": "cuda", "batch_size": 8, "repeats": 5},
}


def test_round_trip_from_yaml_through_dict_is_lossless_in_every_section(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(EVERY_SECTION))
    job = load_config(path)
    as_dict = job.to_dict()
    assert JobConfig.from_dict(as_dict) == job
    assert as_dict == EVERY_SECTION  # every value survives, none is dropped or defaulted
    assert set(as_dict) == set(JobConfig.model_fields)
    assert yaml.safe_load(yaml.safe_dump(as_dict)) == as_dict


def test_defaults_alone_make_a_valid_job():
    job = load_config(None)
    assert job.data.name == "digits" and job.data.image_size == 32
    assert JobConfig.from_dict(job.to_dict()) == job


def test_overrides_set_nested_fields_with_yaml_types():
    job = load_config(None, ["baseline.epochs=3", "recovery.lr=3e-5", "pruning.schedule.targets=[0.1, 0.2]",
                             "data.augment=false", "model.checkpoint=null"])
    assert job.baseline.epochs == 3
    assert job.recovery.lr == pytest.approx(3e-5)
    assert job.pruning.schedule.targets == (0.1, 0.2)
    assert job.data.augment is False


def test_overrides_do_not_touch_the_original_mapping():
    raw = {"data": {"name": "digits"}}
    apply_overrides(raw, ["data.name=shapes"])
    assert raw == {"data": {"name": "digits"}}


def test_out_of_range_value_names_field_value_and_allowed_range():
    with pytest.raises(ConfigError) as caught:
        load_config(None, ["data.image_size=4"])
    message = str(caught.value)
    assert "data.image_size" in message and "got 4" in message and "greater than or equal to 8" in message


def test_bad_choice_lists_the_allowed_ones():
    with pytest.raises(ConfigError, match=r"runtime.precision: Input should be 'auto', 'fp32'.*\(got 'fp8'\)"):
        load_config(None, ["runtime.precision=fp8"])


def test_a_bad_plugin_name_lists_the_registrys_names():
    with pytest.raises(ConfigError, match=r"pruning.criterion: unknown criterion 'l3'; known: bn_gamma, l1, l2, lamp, "
                                          r"mac_aware, random, taylor, vbp$"):
        load_config(None, ["pruning.criterion=l3"])


def test_an_unknown_model_name_is_a_config_error_naming_model_name():
    with pytest.raises(ConfigError) as caught:
        load_config(None, ["model.name=resnet181"])
    ((path, message),) = caught.value.problems
    assert path == "model.name" and message.startswith("unknown model 'resnet181'; did you mean resnet18")


def test_a_search_space_only_job_still_loads_with_load_config():
    # The CLI's plain config commands read search.space as an opaque mapping.
    assert load_config(None, ["search.space.recovery.lr={loguniform: [1e-5, 1e-3]}"]).recovery.lr == 1e-4


def test_unknown_field_lists_the_known_fields_of_its_section():
    with pytest.raises(ConfigError, match=r"recovery.learning_rate: unknown field; allowed fields here: epochs, "):
        load_config(None, ["recovery.learning_rate=0.1"])


def test_unknown_dataset_lists_known_datasets():
    with pytest.raises(ConfigError) as caught:
        load_config(None, ["data.name=mnist"])
    assert "data.name: unknown dataset 'mnist'; known: cifar10, cifar100, digits, imagefolder, shapes" in str(caught.value)


def test_every_problem_is_reported_at_once():
    with pytest.raises(ConfigError) as caught:
        validate_config({"seed": "x", "baseline": {"lr": -1}})
    paths = [path for path, _ in caught.value.problems]
    assert paths == ["seed", "baseline.lr"]


def test_cross_field_rules_are_checked():
    with pytest.raises(ConfigError, match="lr_high and lr_high_threshold are set together"):
        load_config(None, ["recovery.lr_high=3e-5"])
    with pytest.raises(ConfigError, match="targets must increase strictly"):
        load_config(None, ["pruning.schedule.targets=[0.2, 0.1]"])
    with pytest.raises(ConfigError, match="set max_accuracy_drop or min_accuracy, not both"):
        load_config(None, ["stop.min_accuracy=0.8", "stop.max_accuracy_drop=0.02"])
    alone = load_config(None, ["stop.min_accuracy=0.8"]).stop  # an absolute threshold replaces the default drop
    assert alone.min_accuracy == 0.8 and alone.max_accuracy_drop is None


TEACHER = "recovery.teacher={name: tiny_resnet, checkpoint: teacher.pt}"


def test_a_teacher_section_is_refused_where_it_would_teach_nothing_or_be_misbuilt():
    assert load_config(None, [TEACHER]).recovery.teacher.name == "tiny_resnet"
    with pytest.raises(ConfigError, match="recovery: teacher is set but kd_alpha is 0"):
        load_config(None, [TEACHER, "recovery.kd_alpha=0"])
    with pytest.raises(ConfigError, match="recovery.teacher: kwargs may not set num_classes"):
        load_config(None, [TEACHER, "recovery.teacher.kwargs={num_classes: 5}"])
    with pytest.raises(ConfigError, match="recovery.teacher.checkpoint: Field required"):
        load_config(None, ["recovery.teacher={name: tiny_resnet}"])


def test_a_teachers_unknown_name_or_field_is_named_under_recovery_teacher():
    with pytest.raises(ConfigError) as caught:
        load_config(None, ["recovery.teacher={name: resnet181, checkpoint: t.pt}"])
    ((path, message),) = caught.value.problems
    assert path == "recovery.teacher.name" and message.startswith("unknown model 'resnet181'; did you mean resnet18")
    with pytest.raises(ConfigError, match=r"recovery.teacher.weights: unknown field; allowed fields here: name, "
                                          r"checkpoint, checkpoint_format, kwargs"):
        load_config(None, [TEACHER, "recovery.teacher.weights=t.pt"])


def test_a_final_lr_without_final_epochs_is_refused():
    assert load_config(None, ["recovery.final_epochs=2", "recovery.final_lr=1e-5"]).recovery.final_lr == 1e-5
    with pytest.raises(ConfigError, match="final_lr 1e-05 is set but final_epochs is 0"):
        load_config(None, ["recovery.final_lr=1e-5"])


FLOAT_FIELDS = [path for path, kind, *_ in reference() if kind.startswith("float")]


@pytest.mark.parametrize("value", ["inf", "-.inf", ".nan", "1e400"])
@pytest.mark.parametrize("path", FLOAT_FIELDS)
def test_every_float_field_refuses_infinite_and_nan_values(path, value):
    with pytest.raises(ConfigError) as caught:
        load_config(None, [f"{path}={value}"])
    assert [problem_path for problem_path, _ in caught.value.problems] == [path]
    assert "finite number" in caught.value.problems[0][1]


def test_a_float_field_list_refuses_a_non_finite_entry():
    with pytest.raises(ConfigError, match=r"pruning.schedule.targets.1: Input should be a finite number"):
        load_config(None, ["pruning.schedule.targets=[0.1, .nan]"])


@pytest.mark.parametrize("path", ["seed", "search.sampler_seed"])
def test_seeds_are_unsigned_32_bit_numbers(path):
    assert get_path(load_config(None, [f"{path}=4294967295"]).to_dict(), path) == 4294967295
    for bad in ("-1", "4294967296", "100000000000000000000"):
        with pytest.raises(ConfigError, match=rf"^invalid config - {path}: Input should be"):
            load_config(None, [f"{path}={bad}"])


def test_a_schedule_without_targets_is_refused():
    with pytest.raises(ConfigError, match=r"pruning.schedule.targets: Tuple should have at least 1 item"):
        load_config(None, ["pruning.schedule.targets=[]"])


def test_a_key_given_twice_in_a_config_file_or_override_is_refused_with_its_line(tmp_path):
    path = tmp_path / "twice.yaml"
    path.write_text("recovery:\n  lr: 0.1\nseed: 3\nrecovery:\n  epochs: 2\n")
    with pytest.raises(ConfigError, match=rf"^invalid config - config file '{path}' is not valid YAML at line 4, "
                                          r"column 1: key 'recovery' is given twice \(first on line 1\)$"):
        load_config(path)
    with pytest.raises(ConfigError, match=r"override 'recovery=\{lr: 1, lr: 2\}' .* key 'lr' is given twice"):
        load_config(None, ["recovery={lr: 1, lr: 2}"])


def test_malformed_override_and_missing_file_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="not of the form key.sub=value"):
        load_config(None, ["baseline.epochs"])
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "absent.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config(tmp_path / "list.yaml")


def test_baseline_settings_are_what_decides_the_baseline_only():
    job = load_config(None).baseline_settings()
    assert load_config(None, ["pruning.criterion=vbp", "recovery.lr=0.01"]).baseline_settings() == job
    assert load_config(None, ["data.image_size=40"]).baseline_settings() != job
    assert load_config(None, ["seed=3"]).baseline_settings() != job


def test_how_batches_are_served_is_no_part_of_the_baseline_settings():
    job = load_config(None).baseline_settings()
    for served in ("data.num_workers=0", "data.eval_batch_size=7", "data.device_resident=never"):
        assert load_config(None, [served]).baseline_settings() == job, served
    # The baseline's BN statistics are re-estimated on the calibration split: it decides them.
    assert load_config(None, ["data.calibration_size=100"]).baseline_settings() != job


def test_an_untrained_baseline_does_not_depend_on_its_training_recipe():
    untrained = load_config(None, ["baseline.epochs=0"]).baseline_settings()
    for recipe in ("baseline.lr=0.3", "baseline.optimizer=adamw", "data.batch_size=16", "data.hflip=false",
                   "data.crop_padding=2", "data.augment=false"):
        assert load_config(None, ["baseline.epochs=0", recipe]).baseline_settings() == untrained, recipe
        assert load_config(None, [recipe]).baseline_settings() != load_config(None).baseline_settings(), recipe
    assert load_config(None, ["baseline.epochs=0", "baseline.recalibrate_bn=false"]).baseline_settings() != untrained


def test_config_objects_are_frozen():
    job = load_config(None)
    with pytest.raises(Exception):
        job.data.image_size = 64


def test_docs_config_reference_is_current():
    from pathlib import Path

    from prunetune.reference import reference_markdown

    committed = (Path(__file__).parents[1] / "docs" / "config-reference.md").read_text()
    assert committed == reference_markdown(), "run: prunetune reference > docs/config-reference.md"
