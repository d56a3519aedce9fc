from setuptools import find_packages, setup

setup(
    name="ufdl-seed",
    version="0.1.0",
    description="The Seed executor for ufdl-pyramid workers: runs a Scale job type's Seed image with docker",
    python_requires=">=3.11",
    packages=find_packages(exclude=["tests", "tests.*"]),
    zip_safe=False,
    install_requires=["ufdl-pyramid"],
    entry_points={"ufdl_pyramid": ["seed = ufdl_seed.plugin"]},
)
