from setuptools import find_packages, setup

with open("README.md", encoding="utf-8") as readme:
    long_description = readme.read()

requires = [
    "pyramid>=2.0",
    "pyramid_tm>=2.5",
    "pyramid_retry>=2.1",
    "waitress>=2.1",
    "SQLAlchemy>=2.0",
    "zope.sqlalchemy>=3.0",
    "transaction>=3.0",
    "alembic>=1.16",
    "psycopg[binary]>=3.1",
    "PyJWT>=2.8",
    "argon2-cffi>=23.1",
    "jsonschema>=4.18",
    "PyYAML>=6.0",
    "pluggy>=1.3",
    "gevent>=23.9",
    "gevent-websocket>=0.10.1",
    "websocket-client>=1.6",
    "cryptography>=42.0",  # Fernet: the secret settings of Scale job types, encrypted at rest
]

tests_require = [
    "pytest>=7.4",
    "WebTest>=3.0",
    "pyflakes>=3.0",
]

setup(
    name="ufdl-pyramid",
    version="0.1.0",
    description="A job-management server for machine-learning and data-processing work (UFDL v1 API)",
    long_description=long_description,
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(exclude=["tests", "tests.*"]),
    include_package_data=True,
    package_data={"ufdl_pyramid": ["migrations/*.py", "migrations/*.mako", "migrations/versions/*.py"]},
    zip_safe=False,
    install_requires=requires,
    extras_require={"testing": tests_require},
    entry_points={
        "paste.app_factory": ["main = ufdl_pyramid:main"],
        "console_scripts": ["ufdl = ufdl_pyramid.cli:main"],
    },
)
