import pytest

from ufdl_core_types import Predict, Process, Train, standard_registry
from ufdl_pyramid.types import (Contract, ContractSlot, InvalidType, TypeArgumentError, TypeDefinitionError,
                                TypeParameter, is_subtype)

REGISTRY = standard_registry()


def _strings(specialised):
    inputs = {name: [str(t) for t in types] for name, types in specialised.inputs.items()}
    outputs = {name: str(t) for name, t in specialised.outputs.items()}
    return inputs, outputs


def test_train_specialisation():
    contract = REGISTRY.resolve("Train<Domain<'ic'>, Framework<'tf', '1.14'>>")
    specialised = Contract.specialise(contract, REGISTRY)
    assert specialised.contract == contract
    assert _strings(specialised) == (
        {"dataset": ["PK<Dataset<Domain<'ic'>>>"]},
        {"model": "Model<Domain<'ic'>, Framework<'tf', '1.14'>>"},
    )
    assert specialised.inputs["dataset"] == (REGISTRY.resolve("PK<Dataset<Domain<'ic'>>>"),)


def test_specialise_through_the_contract_class_itself():
    contract = REGISTRY.resolve("Train<Domain<'ic'>, Framework<'tf', '1.14'>>")
    assert Train.specialise(contract, REGISTRY) == Contract.specialise(contract, REGISTRY)


def test_predict_specialisation():
    contract = REGISTRY.resolve("Predict<Domain<'od'>, Framework<'pytorch', '2.1'>>")
    assert _strings(Contract.specialise(contract, REGISTRY)) == (
        {"model": ["JobOutput<Model<Domain<'od'>, Framework<'pytorch', '2.1'>>>"],
         "dataset": ["PK<Dataset<Domain<'od'>>>"]},
        {"predictions": "BLOB"},
    )


def test_unspecified_parameters_stay_as_their_bounds():
    assert _strings(Contract.specialise(REGISTRY.resolve("Train"), REGISTRY)) == (
        {"dataset": ["PK<Dataset<Domain>>"]},
        {"model": "Model<Domain, Framework>"},
    )
    assert _strings(Contract.specialise(REGISTRY.resolve("Train<Domain<'ic'>>"), REGISTRY)) == (
        {"dataset": ["PK<Dataset<Domain<'ic'>>>"]},
        {"model": "Model<Domain<'ic'>, Framework>"},
    )
    assert _strings(Contract.specialise(REGISTRY.resolve("Process"), REGISTRY)) == (
        {"input": ["Any"]},
        {"output": "Any"},
    )


def test_process_takes_any_types():
    specialised = Contract.specialise(REGISTRY.resolve("Process<Array<str>, Map<str, int>>"), REGISTRY)
    assert _strings(specialised) == ({"input": ["Array<str>"]}, {"output": "Map<str, int>"})


def test_specialised_outputs_of_a_narrower_contract_are_subtypes():
    narrow = Contract.specialise(REGISTRY.resolve("Train<Domain<'ic'>, Framework<'tf', '1.14'>>"), REGISTRY)
    wide = Contract.specialise(REGISTRY.resolve("Train<Domain<'ic'>>"), REGISTRY)
    assert is_subtype(narrow.outputs["model"], wide.outputs["model"])
    assert not is_subtype(wide.outputs["model"], narrow.outputs["model"])


def test_substitution_is_structural_not_textual():
    # 'D' inside a string literal and the D in 'Dataset' must stay as they are.
    class Labelled(Contract):
        name = "Labelled"
        parameters = (TypeParameter("D", "Domain"),)
        inputs = {"data": ContractSlot(("PK<Dataset<D>>", "Name<Dataset<D>>"), "By key or by name.")}
        outputs = {"label": ContractSlot("Framework<'D', 'D'>", "A framework literally named D.")}

    registry = standard_registry()
    registry.register(Labelled)
    specialised = Contract.specialise(registry.resolve("Labelled<Domain<'ic'>>"), registry)
    assert _strings(specialised) == (
        {"data": ["PK<Dataset<Domain<'ic'>>>", "Name<Dataset<Domain<'ic'>>>"]},
        {"label": "Framework<'D', 'D'>"},
    )


def test_literal_parameters_substitute_and_truncate_when_missing():
    class Versioned(Contract):
        name = "Versioned"
        parameters = (TypeParameter("N", "@str"), TypeParameter("V", "@str"))
        outputs = {"framework": ContractSlot(("Framework<N, V>",), "")}

    registry = standard_registry()
    registry.register(Versioned)
    full = Contract.specialise(registry.resolve("Versioned<'tf', '1.14'>"), registry)
    assert str(full.outputs["framework"]) == "Framework<'tf', '1.14'>"
    partial = Contract.specialise(registry.resolve("Versioned<'tf'>"), registry)
    assert str(partial.outputs["framework"]) == "Framework<'tf'>"
    bare = Contract.specialise(registry.resolve("Versioned"), registry)
    assert str(bare.outputs["framework"]) == "Framework"


def test_specialising_a_non_contract_is_a_user_error():
    with pytest.raises(InvalidType, match="str is not a contract"):
        Contract.specialise(REGISTRY.resolve("str"), REGISTRY)
    with pytest.raises(InvalidType, match="Train is not a Predict contract"):
        Predict.specialise(REGISTRY.resolve("Train"), REGISTRY)


def test_slot_types_that_do_not_fit_are_reported():
    class Mismatched(Contract):
        name = "Mismatched"
        parameters = (TypeParameter("T", "*"),)
        inputs = {"model": ContractSlot(("Model<T>",), "")}

    registry = standard_registry()
    registry.register(Mismatched)
    with pytest.raises(TypeArgumentError, match="argument 'D' of Model must be a subtype of Domain, got str"):
        Contract.specialise(registry.resolve("Mismatched<str>"), registry)


def test_contract_bounds_are_checked_on_resolve():
    with pytest.raises(TypeArgumentError, match="argument 'D' of Train must be a subtype of Domain"):
        REGISTRY.resolve("Train<Framework<'tf', '1'>>")


def test_contracts_are_abstract():
    assert Contract.abstract and Train.abstract and Process.abstract
    assert REGISTRY.resolve("Train<Domain<'ic'>, Framework<'tf', '1'>>").is_abstract


@pytest.mark.parametrize("body, message", [
    ({"outputs": {"x": ContractSlot(("str", "int"), "")}}, "an output has exactly one type"),
    ({"inputs": {"": ContractSlot(("str",), "")}}, "non-empty name"),
    ({"inputs": {"x": "str"}}, "ContractSlot"),
    ({"inputs": ["x"]}, "mapping"),
    ({"parameters": (TypeParameter("T", "*"),), "inputs": {"x": ContractSlot(("Array<T<str>>",), "")}},
     "parameter 'T' cannot take arguments"),
    ({"parameters": (TypeParameter("N", "@int"),), "inputs": {"x": ContractSlot(("N",), "")}},
     "literal parameter 'N' cannot stand for a type"),
])
def test_badly_defined_contracts_fail_when_defined(body, message):
    with pytest.raises(TypeDefinitionError, match=message):
        type("Bad", (Contract,), {"name": "Bad", **body})


def test_slot_definitions_are_checked():
    with pytest.raises(TypeDefinitionError, match="at least one type"):
        ContractSlot((), "")
    with pytest.raises(TypeDefinitionError, match="not valid"):
        ContractSlot(("Array<",), "")
    assert ContractSlot("str", "help").types == ("str",)
