from setuptools import find_packages, setup

setup(
    name="ufdl-core-types",
    version="0.1.0",
    description="The standard UFDL types and contracts, as a ufdl-pyramid plugin",
    python_requires=">=3.11",
    packages=find_packages(exclude=["tests", "tests.*"]),
    zip_safe=False,
    install_requires=["ufdl-pyramid"],
    entry_points={"ufdl_pyramid": ["core_types = ufdl_core_types.plugin"]},
)
