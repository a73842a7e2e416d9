"""Validation of the names users choose: entities, projects, run ids, artifacts, aliases."""

from __future__ import annotations

import re

from stemma.errors import InvalidNameError

NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"
_NAME_RE = re.compile(NAME_PATTERN)
RUN_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}"
_RUN_ID_RE = re.compile(RUN_ID_PATTERN)


def check_name(value: object, what: str) -> str:
    """Return ``value`` if it is a valid name, else raise naming the pattern."""
    if not isinstance(value, str) or not _NAME_RE.fullmatch(value):
        raise InvalidNameError(
            f"invalid {what} name {value!r}: it must match {NAME_PATTERN} "
            "(letters, digits, '.', '_' and '-', starting with a letter or digit, "
            "at most 128 characters)",
            what=what,
            value=repr(value),
            pattern=NAME_PATTERN,
        )
    return value


def check_run_id(value: object) -> str:
    """Run ids appear in paths and URLs, so they are stricter than display names."""
    if not isinstance(value, str) or not _RUN_ID_RE.fullmatch(value):
        raise InvalidNameError(
            f"invalid run id {value!r}: it must match {RUN_ID_PATTERN}",
            what="run id",
            value=repr(value),
            pattern=RUN_ID_PATTERN,
        )
    return value


def split_project(project: str, entity: str | None) -> tuple[str | None, str]:
    """Accept ``project="team-a/pretraining"`` as W&B does: the entity travels in front."""
    if "/" in project:
        parts = project.split("/")
        if len(parts) != 2:
            raise InvalidNameError(
                f"invalid project path {project!r}: use 'project' or 'entity/project'",
                what="project",
                value=project,
            )
        head, project = parts
        if entity is not None and entity != head:
            raise InvalidNameError(
                f"project path {head}/{project!r} names entity {head!r} but entity={entity!r}",
                what="project",
                value=project,
            )
        entity = head
    return entity, project
