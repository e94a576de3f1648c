"""Share exported weights on the Hugging Face Hub: :func:`push_to_hub` uploads a folder written by
``staa-snn export --format safetensors`` (``model.safetensors``, ``config.json``, the model card
``README.md``); ``load_pretrained("hf://owner/name")`` builds the net back from it.

Needs the ``[hub]`` extra and a token (``huggingface-cli login``, or ``HF_TOKEN`` in the
environment, or ``token=``).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..models.pretrained import FILES, HUB_PREFIX, hub_repo, huggingface_hub, weight_files

__all__ = ["push_to_hub"]


def push_to_hub(folder: str | os.PathLike, repo_id: str, *, private: bool = False, token: str | None = None,
                revision: str | None = None, commit_message: str | None = None) -> str:
    """Upload an export folder to the Hub model repository ``repo_id`` (``owner/name``; created when
    it does not exist, ``private`` then). Only the export's own files are sent. Returns the
    ``hf://`` reference that :func:`~staa_snn.models.load_pretrained` takes."""
    repo, _ = hub_repo(repo_id, revision=False)  # a branch goes in revision=
    weights, _ = weight_files(folder)  # refuses a folder without model.safetensors and config.json
    folder = Path(weights).parent
    hub = huggingface_hub()
    api = hub.HfApi(token=token, library_name="staa-snn")
    api.create_repo(repo_id=repo, repo_type="model", private=private, exist_ok=True)
    api.upload_folder(folder_path=str(folder), repo_id=repo, repo_type="model", revision=revision,
                      allow_patterns=[f for f in FILES if (folder / f).is_file()],
                      commit_message=commit_message or f"staa-snn weights ({folder.name})")
    return f"{HUB_PREFIX}{repo}" + (f"@{revision}" if revision else "")
