"""The work behind the review dock's buttons, run in worker threads (``runner``): Qt-free,
each returns what the GUI thread draws (the table's rows, a pair's arrays)."""

from __future__ import annotations

from wavegms.inference.review import ReviewSession

IMAGE, MASK, SOFT = "review: image", "review: mask", "review: soft mask"

TableState = tuple[list[dict], dict[str, str], int, "str | None"]


def table_state(session: ReviewSession) -> TableState:
    """The rows of ``results.csv``, each name's review status, how many are left and the
    next one to show (one read of the table)."""
    state = session.state
    status = {
        **dict.fromkeys(state.edited, "edited"),
        **dict.fromkeys(state.skipped, "skipped"),
        **dict.fromkeys(state.accepted, "accepted"),
    }
    rows = session.rows()
    pending = session.pending(rows)
    return rows, status, len(pending), pending[0] if pending else None


def open_job(out: str, images, model, project: str, gt) -> tuple[ReviewSession, TableState]:
    session = ReviewSession.open(out, images, model, project, gt)
    return session, table_state(session)


def read_pair(session: ReviewSession, name: str) -> tuple[str, object, object]:
    """The image and its mask as labels (0/1)."""
    return name, session.image(name), session.mask(name).astype("uint8")


def read_soft(session: ReviewSession, name: str) -> tuple[str, object]:
    from wavegms.data.images import read_image
    from wavegms.inference.folder_outputs import output_paths

    return name, read_image(output_paths(session.out_dir, name)[1])


def accept_job(session: ReviewSession, name: str, mask) -> tuple[str, TableState]:
    """Accept ``name`` with ``mask`` (the layer's data, copied here, not on the GUI thread)."""
    entry = session.accept(name, None if mask is None else (mask > 0))
    return f"accepted {name} (pair {entry.name})", table_state(session)


def skip_job(session: ReviewSession, name: str) -> tuple[str, TableState]:
    session.skip(name)
    return f"skipped {name}", table_state(session)


def table_job(session: ReviewSession, what: str, name: str | None) -> tuple[str, TableState]:
    """Restore one image's mask (``what="restore"``) or undo the last batch replace."""
    if what == "restore":
        session.restore(name)
        return f"restored the earlier mask of {name}", table_state(session)
    names = session.undo_last_replace()
    return f"brought back {len(names)} mask(s)", table_state(session)


def prepare_finetune_job(session: ReviewSession, template) -> tuple[object, str]:
    """The prepared fine-tune request, and how its model will be judged (at what cost)."""
    from wavegms.inference.adoption import plan_text

    request = session.finetune_request(template)
    return request, plan_text(request)


def compare_job(session: ReviewSession, device: str, progress=None, cancel=None):
    return session.compare(device, progress, cancel)


def adopt_and_resegment_job(
    session: ReviewSession, device: str, progress=None, cancel=None
) -> tuple[str, TableState]:
    """Install and adopt the model awaiting a decision (if any), then segment the images not
    yet reviewed again with it (the masks replaced are kept)."""
    if session.state.candidate:
        session.adopt()
    report = session.resegment(device, progress, cancel)
    text = "nothing left to segment" if report is None else report.summary().splitlines()[0]
    return f"now using {session.state.model}; {text}", table_state(session)
