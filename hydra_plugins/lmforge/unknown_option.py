"""A config group option that conf/ does not have (`-S task=[topic,nope]`, `-S model=nope`), refused
in one line that lists the options, instead of Hydra's report with its search path: a config
source placed last in DVC's search path, so that it is asked only for what conf/ lacks."""

from hydra.core.config_search_path import ConfigSearchPath
from hydra.errors import MissingConfigException
from hydra.plugins.config_source import ConfigResult, ConfigSource
from hydra.plugins.search_path_plugin import SearchPathPlugin

from lmforge.config import unknown_option

# conf/pipeline.yaml's groups (not `finetune`: the tasks include it as optional, and a missing
# profile must stay missing)
GROUPS = ("task", "data", "tokenizer", "model", "objective", "trainer", "experiment")


def _split(config_path: str) -> tuple[str, str]:
    group, _, name = config_path.removesuffix(".yaml").partition("/")
    return group, name


class UnknownOption(ConfigSource):
    @staticmethod
    def scheme() -> str:
        return "lmforge-unknown"

    def available(self) -> bool:
        return True

    def is_group(self, config_path: str) -> bool:
        return False

    def is_config(self, config_path: str) -> bool:
        group, name = _split(config_path)
        return group in GROUPS and bool(name)

    def load_config(self, config_path: str) -> ConfigResult:
        raise MissingConfigException(unknown_option(*_split(config_path)), config_path)

    def list(self, config_path: str, results_filter) -> list[str]:
        return []


class UnknownOptionLast(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        search_path.append("lmforge", "lmforge-unknown://")
