"""
``sb3-trpo-critic push_to_hub`` and ``sb3-trpo-critic load_from_hub``: rl-zoo3's Hugging Face Hub scripts, with
TRPOCritic registered and a model card that says where TRPOCritic comes from.

rl-zoo3's scripts run unchanged (their flags, the repository ``{organization}/{algo}-{env}``, its files: the
model zip and its unzipped folder, ``vec_normalize.pkl``, ``config.yml``, ``args.yml``, ``env_kwargs.yml``,
``train_eval_metrics.zip``, ``results.json``, ``README.md``), with three changes:

- the model card of ``trpo_critic`` and ``recurrent_trpo_critic`` agents (:func:`model_card`) names the
  algorithm's class and sb3-trpo-critic beside stable-baselines3, gives the ``pip install`` line, and its commands
  are ``sb3-trpo-critic ...`` (``python -m rl_zoo3...`` does not know these algorithms); its metadata gets the
  ``sb3-trpo-critic`` tag. Other algorithms' cards are rl-zoo3's;
- ``huggingface_sb3`` releases that name ``generate_metadata`` ``_generate_metadata`` (returning a
  ``ModelCardData``) are given the name rl-zoo3 imports, returning the dictionary rl-zoo3 expects;
- a repository without ``vec_normalize.pkl`` loads (as rl-zoo3 intends: "No normalization file") with
  ``huggingface_hub`` releases whose missing-file error is not a ``requests.HTTPError``.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import inspect
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, OfflineModeIsEnabled
from huggingface_sb3 import EnvironmentName, ModelName, ModelRepoId

from sb3_trpo_critic.extras import environment_extras, install_command
from sb3_trpo_critic.zoo.registry import ALGORITHMS

#: This package's home page, linked from the model cards.
PACKAGE_URL = "https://github.com/sb3-trpo-critic/sb3-trpo-critic"

#: The tag this package's model cards get in their metadata, beside ``stable-baselines3``.
TAG = "sb3-trpo-critic"

#: The hub scripts, by the name of the ``sb3-trpo-critic`` script: rl-zoo3's module.
HUB_SCRIPTS = {"push_to_hub": "rl_zoo3.push_to_hub", "load_from_hub": "rl_zoo3.load_from_hub"}

#: Errors of the Hub client that are the user's (no such repository or file, not logged in, offline).
HUB_USER_ERRORS: tuple[type[BaseException], ...] = (HfHubHTTPError, EntryNotFoundError, OfflineModeIsEnabled)


def model_card(
    card: str,
    *,
    algo: str,
    algo_class_name: str,
    organization: str,
    env_id: str,
    hyperparams: Mapping[str, Any],
) -> str:
    """
    rl-zoo3's model card of one of this package's algorithms, with what a reader needs to use it: where the
    algorithm comes from, how to install it, and the ``sb3-trpo-critic`` commands instead of ``python -m rl_zoo3``.

    rl-zoo3's title, introduction, hyperparameters and environment arguments are kept; its "Usage" and
    "Training" sections are replaced (if rl-zoo3's card has another layout, it is kept whole and these
    sections are added after it).

    :param card: The card rl-zoo3 generated
    :param algo: rl-zoo3's name of the algorithm (``trpo_critic``)
    :param algo_class_name: The class (``TRPOCritic``)
    :param organization: The Hub organization the agent is pushed to
    :param env_id: The environment
    :param hyperparams: The agent's saved hyperparameters (``config.yml``)
    :return: The card
    """
    env_name = EnvironmentName(env_id)
    model_name = ModelName(algo, env_name)
    repo_id = ModelRepoId(organization, model_name)
    install = install_command("zoo", *environment_extras(env_id))
    normalization = ""
    if hyperparams.get("normalize"):
        normalization = (
            "\nThe agent was trained with `VecNormalize`: its statistics are `vec_normalize.pkl`, which `enjoy`\n"
            "loads (from Python: `VecNormalize.load(load_from_hub(...), env)`, with `training = False` and\n"
            "`norm_reward = False`).\n"
        )
    ours = f"""
**{algo_class_name}** is not part of stable-baselines3 or the RL Zoo: it comes from
[sb3-trpo-critic]({PACKAGE_URL}) (Trust Region Policy Optimization with a separately regressed value
critic, for Stable-Baselines3), which registers it in the RL Zoo as `{algo}`. Install sb3-trpo-critic
with the RL Zoo (and SB3, SB3-Contrib) to load this model:

```bash
{install}
```

## Usage (with SB3 RL Zoo and sb3-trpo-critic)

RL Zoo: https://github.com/DLR-RM/rl-baselines3-zoo<br/>
SB3: https://github.com/DLR-RM/stable-baselines3<br/>
sb3-trpo-critic: {PACKAGE_URL}

The `sb3-trpo-critic` command runs the RL Zoo's scripts with `{algo}` registered (`python -m rl_zoo3...`
does not know it). The model is unpickled: `load_from_hub` asks for `TRUST_REMOTE_CODE=True` (set it if you
trust this repository).

```
# Download model and save it into the logs/ folder
TRUST_REMOTE_CODE=True sb3-trpo-critic load_from_hub --algo {algo} --env {env_id} -orga {organization} -f logs/
sb3-trpo-critic enjoy --algo {algo} --env {env_id} -f logs/
```

From Python:

```python
from huggingface_sb3 import load_from_hub
from sb3_trpo_critic import {algo_class_name}

model = {algo_class_name}.load(load_from_hub("{repo_id}", "{model_name.filename}"))
```
{normalization}
## Training (with the RL Zoo and sb3-trpo-critic)
```
sb3-trpo-critic train --algo {algo} --env {env_id} -f logs/
# Upload the model and generate video (when possible)
sb3-trpo-critic push_to_hub --algo {algo} --env {env_id} -f logs/ -orga {organization}
```
"""
    head, usage, rest = card.partition("\n## Usage")
    tail = rest.find("\n## Hyperparameters")
    if not usage or tail < 0:
        return card.rstrip("\n") + "\n" + ours
    return head.rstrip("\n") + "\n" + ours + rest[tail:]


def with_tag(metadata: Any) -> Any:
    """
    :param metadata: The card's metadata, as rl-zoo3 made it (a dictionary, or a ``ModelCardData``)
    :return: The same, with :data:`TAG` added to its tags
    """
    tags = metadata.get("tags") if isinstance(metadata, dict) else getattr(metadata, "tags", None)
    tags = list(tags or [])
    if TAG not in tags:
        tags.append(TAG)
    if isinstance(metadata, dict):
        return {**metadata, "tags": tags}
    metadata.tags = tags
    return metadata


def our_model_card(generate_model_card: Callable[..., tuple[str, Any]]) -> Callable[..., tuple[str, Any]]:
    """
    :param generate_model_card: rl-zoo3's ``generate_model_card``
    :return: The same function, that makes :func:`model_card` of this package's algorithms and tags their metadata
    """
    signature = inspect.signature(generate_model_card)

    def generate(*args: Any, **kwargs: Any) -> tuple[str, Any]:
        card, metadata = generate_model_card(*args, **kwargs)
        arguments = signature.bind(*args, **kwargs).arguments
        if arguments["algo_name"] not in ALGORITHMS:
            return card, metadata
        card = model_card(
            card,
            algo=arguments["algo_name"],
            algo_class_name=arguments["algo_class_name"],
            organization=arguments["organization"],
            env_id=arguments["env_id"],
            hyperparams=arguments.get("hyperparams") or {},
        )
        return card, with_tag(metadata)

    return generate


def _huggingface_sb3_push_to_hub() -> ModuleType:
    # (the module: huggingface_sb3.push_to_hub, the package's attribute, is its function of that name)
    return importlib.import_module("huggingface_sb3.push_to_hub")


def _generate_metadata(model_name: str, env_id: str, mean_reward: float, std_reward: float) -> dict[str, Any]:
    """``huggingface_sb3.push_to_hub.generate_metadata`` as rl-zoo3 calls it: the metadata as a dictionary."""
    metadata = _huggingface_sb3_push_to_hub()._generate_metadata(model_name, env_id, mean_reward, std_reward)
    return metadata.to_dict() if hasattr(metadata, "to_dict") else dict(metadata)


@contextlib.contextmanager
def _attribute(owner: Any, name: str, value: Any) -> Iterator[None]:
    """Set ``owner.name`` meanwhile; restore it (or remove it, if it was missing) afterwards."""
    missing = object()
    old = vars(owner).get(name, missing) if isinstance(owner, ModuleType) else getattr(owner, name, missing)
    setattr(owner, name, value)
    try:
        yield
    finally:
        if old is missing:
            delattr(owner, name)
        else:
            setattr(owner, name, old)


def import_script(module_name: str) -> ModuleType:
    """
    Import one of rl-zoo3's hub modules: ``rl_zoo3.push_to_hub`` imports ``generate_metadata`` from
    ``huggingface_sb3.push_to_hub``, which some releases call ``_generate_metadata`` (see the module's docstring).

    :param module_name: ``rl_zoo3.push_to_hub`` or ``rl_zoo3.load_from_hub``
    :return: The module
    """
    push_to_hub = _huggingface_sb3_push_to_hub()
    if hasattr(push_to_hub, "generate_metadata") or not hasattr(push_to_hub, "_generate_metadata"):
        return importlib.import_module(module_name)
    with _attribute(push_to_hub, "generate_metadata", _generate_metadata):
        return importlib.import_module(module_name)


@contextlib.contextmanager
def missing_files_are_http_errors() -> Iterator[None]:
    """
    Meanwhile, ``rl_zoo3.load_from_hub.download_from_hub`` (used by ``load_from_hub`` and ``enjoy``) takes a missing
    ``vec_normalize.pkl`` for what it is, whichever error the Hub client raises for a missing file.
    """
    module = import_script("rl_zoo3.load_from_hub")
    errors = module.HTTPError if isinstance(module.HTTPError, tuple) else (module.HTTPError,)
    with _attribute(module, "HTTPError", (*errors, EntryNotFoundError)):
        yield


def _is_main_test(test: ast.expr) -> bool:
    return (
        isinstance(test, ast.Compare)
        and isinstance(test.left, ast.Name)
        and test.left.id == "__name__"
        and len(test.comparators) == 1
        and isinstance(test.comparators[0], ast.Constant)
        and test.comparators[0].value == "__main__"
    )


def run_main_block(module: ModuleType) -> None:
    """
    Run a script's ``if __name__ == "__main__":`` block, as ``python -m <module>`` would, but in (a copy of) the
    imported module's namespace: its functions are the module's, so that changes to the module's names (the model
    card, the errors) apply to them.

    :param module: An imported script
    :raises RuntimeError: If the module has no such block
    """
    path = str(module.__file__)
    tree = ast.parse(Path(path).read_text(encoding="utf-8"), filename=path)
    blocks = [node for node in tree.body if isinstance(node, ast.If) and _is_main_test(node.test)]
    if len(blocks) != 1:
        raise RuntimeError(f"{module.__name__} ({path}) has no `if __name__ == '__main__':` block to run")
    code = compile(ast.Module(body=blocks[0].body, type_ignores=[]), path, "exec")
    exec(code, {**vars(module), "__name__": "__main__"})


def run_hub_script(script: str) -> None:
    """
    Run ``push_to_hub`` or ``load_from_hub`` (rl-zoo3's, on ``sys.argv``) with this package's changes.

    :param script: A key of :data:`HUB_SCRIPTS`
    """
    module = import_script(HUB_SCRIPTS[script])
    with contextlib.ExitStack() as changes:
        if hasattr(module, "generate_model_card"):
            changes.enter_context(_attribute(module, "generate_model_card", our_model_card(module.generate_model_card)))
        changes.enter_context(missing_files_are_http_errors())
        run_main_block(module)
