"""Build step: compile the message catalogues (.po -> .mo) before the packages are built.

Everything else about the package is in pyproject.toml. setuptools runs ``build_py``
for wheels and for editable installs alike (``pip install -e .``, with
``editable_mode`` set), so the .mo files exist wherever the package is installed
from; they are written beside their .po (git ignores them) and shipped as package
data. Babel is a build requirement only: at run time the stdlib reads the .mo.
"""

from __future__ import annotations

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
LOCALES = ROOT / "client_sync" / "locale"


def compile_catalogues() -> list[Path]:
    """Compile every ``<lang>/LC_MESSAGES/*.po`` under client_sync/locale; return the .mo paths."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    written = []
    for po in sorted(LOCALES.glob("*/LC_MESSAGES/*.po")):
        with po.open("rb") as source:
            catalogue = read_po(source, locale=po.parts[-3])
        errors = [(m.id, err) for m, errs in catalogue.check() for err in errs]
        if errors:
            raise SystemExit(f"{po}: {errors}")
        mo = po.with_suffix(".mo")
        with mo.open("wb") as target:
            write_mo(target, catalogue)
        written.append(mo)
    return written


class BuildWithCatalogues(build_py):
    """build_py that first compiles the message catalogues."""

    def run(self) -> None:
        compile_catalogues()
        super().run()


setup(cmdclass={"build_py": BuildWithCatalogues})
