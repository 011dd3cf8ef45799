"""Plug-ins by name. A backbone (`model.arch`) or a task family (`task.<t>.family`) is a class that
registers itself under its name when its module is imported; asking for a name imports
`lmforge.<package>.<name>` (or the module path given) and, when nothing registers it, says which
names there are."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Callable, Generic, TypeVar

from lmforge.errors import ConfigError

T = TypeVar("T", bound=type)


class Registry(Generic[T]):
    """The plug-ins of one kind: those in `lmforge.<package>` (its modules but `helpers`) and any a
    module path registers. `setting` names the config value that asks for one (`{name}` in it)."""

    def __init__(self, package: str, kind: str, attr: str, setting: str, helpers: tuple[str, ...] = ()):
        self.package, self.kind, self.attr, self.setting = package, kind, attr, setting
        self.helpers = ("__init__", *helpers)
        self.classes: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Class decorator: make the class available under `name` (also set as its `attr`)."""

        def add(cls: T) -> T:
            setattr(cls, self.attr, name)
            self.classes[name] = cls
            return cls

        return add

    def builtin(self) -> list[str]:
        """The names of the plug-ins lmforge ships (its modules in `lmforge.<package>`)."""
        folder = Path(importlib.import_module(f"lmforge.{self.package}").__file__).parent
        return sorted(p.stem for p in folder.glob("*.py") if p.stem not in self.helpers)

    def known(self) -> list[str]:
        """The built-in names and those registered from elsewhere."""
        return sorted({*self.classes, *self.builtin()})

    def get(self, name: str) -> T:
        """The class registered as `name`, importing the module that registers it."""
        if name not in self.classes:
            module = name if "." in name else f"lmforge.{self.package}.{name}"
            asked = self.setting.format(name=repr(name))
            try:
                importlib.import_module(module)
            except ModuleNotFoundError as e:
                if e.name and module.startswith(e.name):
                    raise ConfigError(
                        f"{asked} is not a {self.kind} lmforge knows ({', '.join(self.known())}; "
                        "or a module path that registers one)"
                    ) from None
                raise
            if name not in self.classes:
                raise ConfigError(f"{asked}: module {module} registers no {self.kind} of that name")
        return self.classes[name]
