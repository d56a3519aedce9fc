"""The standard contracts: training, prediction, and processing one value into another."""
from ufdl_pyramid.types import ANY_BOUND, Contract, ContractSlot, TypeParameter


class Train(Contract):
    name = "Train"
    parameters = (TypeParameter("D", "Domain"), TypeParameter("F", "Framework"))
    description = "Trains a model with framework F on a dataset of domain D."
    inputs = {"dataset": ContractSlot(("PK<Dataset<D>>",), "The dataset to train on.")}
    outputs = {"model": ContractSlot(("Model<D, F>",), "The trained model.")}


class Predict(Contract):
    """The predictions are BLOB: annotation files in the domain's own format, which the server stores as is."""

    name = "Predict"
    parameters = (TypeParameter("D", "Domain"), TypeParameter("F", "Framework"))
    description = "Makes predictions with a trained model on a dataset of domain D."
    inputs = {"model": ContractSlot(("JobOutput<Model<D, F>>",), "The model (the output of a training job)."),
              "dataset": ContractSlot(("PK<Dataset<D>>",), "The dataset to predict on.")}
    outputs = {"predictions": ContractSlot(("BLOB",), "The predictions, in the domain's annotation format.")}


class Process(Contract):
    name = "Process"
    parameters = (TypeParameter("I", ANY_BOUND), TypeParameter("O", ANY_BOUND))
    description = "Turns an input of type I into an output of type O."
    inputs = {"input": ContractSlot(("I",), "The value to process.")}
    outputs = {"output": ContractSlot(("O",), "The result.")}
