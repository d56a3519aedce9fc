from setuptools import find_packages, setup

setup(
    name="ufdl-example-executors",
    version="0.1.0",
    description="Example executors for ufdl-pyramid workers: a shell command and a word counter",
    python_requires=">=3.11",
    packages=find_packages(exclude=["tests", "tests.*"]),
    zip_safe=False,
    install_requires=["ufdl-pyramid"],
    entry_points={"ufdl_pyramid": ["example_executors = ufdl_example_executors.plugin"]},
)
