"""Template documents the template and job tests share (the standard types come from ufdl-core-types)."""
import copy

IC_NUMPY = "Domain<'ic'>, Framework<'numpy', '1.26'>"

TRAIN = {
    "name": "tiny-train", "version": 1, "description": "Trains a tiny classifier.", "scope": "public",
    "domain": "ic", "licence": "MIT",
    "specific": {
        "job_type": f"Train<{IC_NUMPY}>",
        "executor_class": "ufdl_example_executors.TinyTrainer",
        "required_packages": "numpy",
        "parameters": {
            "epochs": {"types": ["int"], "help": "Passes over the data", "default": 5},
            "rate": {"types": ["float"], "help": "Learning rate", "default": 0.1, "const": True},
            "tag": {"types": ["str"], "help": "A label for the run"},
        },
    },
}

PREDICT = {
    "name": "tiny-predict", "version": 1, "description": "Predicts with a tiny classifier.", "scope": "public",
    "domain": "ic", "licence": "MIT",
    "specific": {"job_type": f"Predict<{IC_NUMPY}>", "executor_class": "ufdl_example_executors.TinyPredictor",
                 "required_packages": "", "parameters": {}},
}

TRAIN_THEN_PREDICT = {
    "name": "train-then-predict", "description": "Train, then predict with the model.", "scope": "public",
    "domain": "ic", "licence": "MIT",
    "specific": {
        "nodes": {"train": {"name": "tiny-train", "version": 1,
                            "parameter_default_overrides": {"epochs": {"value": 9, "type": "int"}}},
                  "predict": {"name": "tiny-predict"}},
        "dependencies": [{"from_node": "train", "from_output": "model", "to_node": "predict",
                          "to_input": "model"}],
    },
}

PROCESS = {
    "name": "blob-process", "version": 1, "scope": "public", "licence": "MIT",
    "specific": {"job_type": "Process<JobOutput<BLOB>, BLOB>", "executor_class": "ufdl_example_executors.Shell",
                 "required_packages": "", "parameters": {}},
}

DATASET = {"value": 7, "type": "PK<Dataset<Domain<'ic'>>>"}


def document(base: dict, **changes) -> dict:
    changed = copy.deepcopy(base)
    for path, value in changes.items():
        target = changed
        *parents, last = path.split("__")
        for key in parents:
            target = target[key]
        if value is DELETE:
            del target[last]
        else:
            target[last] = value
    return changed


DELETE = object()
