"""Model Center spool callback for the LiteLLM proxy.

Appends every request's StandardLoggingPayload (success and failure) as one JSON line to a spool
file of this worker process. Model Center's controller tails these files into its spend ledger
(DESIGN.md section 7). Wired in by the compiled config, as one of two instances:

    litellm_settings:
      callbacks: [modelcenter_spool.proxy_handler_instance]    # figures only (the default)
      callbacks: [modelcenter_spool.content_handler_instance]  # policies set spend.keep_content

``proxy_handler_instance`` drops prompt and response content (``messages``, ``response``) unless
MODELCENTER_SPOOL_KEEP_CONTENT=1 (for a LiteLLM wired by hand); ``content_handler_instance`` always
keeps it. Either way the controller stores content only when its policies ask for it. A line
that would exceed MAX_CONTENT_LINE_BYTES with its content is written without it (and says so).

The request path only copies a dict and puts it on a bounded queue; a background thread
serialises and writes. Nothing here raises into LiteLLM: errors are logged and counted. When a
write fails (a full disk) the lines stay in memory, in order, and are retried every second; a
short write is cut back to its last whole line. Lines beyond MODELCENTER_SPOOL_PENDING_BYTES are
given up, and a ``modelcenter_spool_lost`` line written once the disk has room says how many.

Files: ``<dir>/spool-<start ms>-<pid>-<seq>.jsonl``, never renamed or truncated, so a reader can
key its offsets by file name. A file is written only by the process that created it, and only
while it is younger than MODELCENTER_SPOOL_MAX_AGE_S and smaller than MODELCENTER_SPOOL_MAX_BYTES;
after that the writer starts the next sequence number. So a file whose last change is older than
the maximum age is finished and a reader that has consumed it may delete it.

Environment:
    MODELCENTER_SPOOL_DIR           spool directory (created if missing); default ./modelcenter-spool
    MODELCENTER_SPOOL_MAX_BYTES     rotate after this many bytes (default 64 MiB)
    MODELCENTER_SPOOL_MAX_AGE_S     rotate when the file is this old (default 3600)
    MODELCENTER_SPOOL_QUEUE         events held in memory before new ones are dropped (default 50000)
    MODELCENTER_SPOOL_PENDING_BYTES lines held in memory while the spool cannot be written (a full
                                    disk) before new ones are given up and counted (default 64 MiB)
    MODELCENTER_SPOOL_KEEP_CONTENT  "1" makes proxy_handler_instance keep prompts and responses
                                    (messages, response); default drops them
"""

from __future__ import annotations

import atexit
import logging
import math
import os
import queue
import threading
import time
from typing import Any

try:  # orjson ships with litellm[proxy]; json is the fallback
    import orjson

    def _dumps(value: Any) -> bytes:
        return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS)

except ImportError:  # pragma: no cover
    import json

    def _dumps(value: Any) -> bytes:
        # allow_nan=False: NaN is not JSON; such a record goes through _dumps_lenient instead.
        return json.dumps(value, default=str, separators=(",", ":"), allow_nan=False).encode(
            "utf-8"
        )


def _finite(value: Any) -> Any:
    """The value with NaN and infinities (not JSON) replaced by None, at any depth."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


def _dumps_lenient(value: Any) -> bytes:
    """
    For a record _dumps refuses: a lone surrogate in a string (orjson refuses what is not UTF-8,
    and a JSON escape in a request body can put one in a tag) or NaN. The stdlib writes lone
    surrogates as \\udXXX escapes (ASCII output), which the controller replaces; NaN becomes null.
    Slower, and only for such records: the request is still recorded.
    """
    import json as stdlib_json

    return stdlib_json.dumps(
        _finite(value), default=str, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode("ascii")


def _line(record: dict) -> bytes:
    """One spool line; a record with a lone surrogate or NaN is written cleaned, not lost."""
    try:
        return _dumps(record) + b"\n"
    except Exception:
        return _dumps_lenient(record) + b"\n"


from litellm.integrations.custom_logger import CustomLogger

log = logging.getLogger("modelcenter.spool")

# Request and response content: dropped unless the instance keeps content (see the module doc).
CONTENT_FIELDS = ("messages", "response")
# A line longer than this with its content is written without it: the controller reads lines of at
# most 4 MiB, and losing a request's figures to a huge prompt would be worse than losing the prompt.
MAX_CONTENT_LINE_BYTES = 3 * 1024 * 1024
# Set on a record whose content was dropped for size.
CONTENT_DROPPED_FIELD = "modelcenter_content_dropped"
# How often the writer thread writes what is queued (also the most a SIGKILL can lose).
FLUSH_INTERVAL_S = 0.05
# After a failed write (a full disk), how long the writer waits before trying again; the lines
# wait in memory (up to MODELCENTER_SPOOL_PENDING_BYTES) and are written in order once it can.
RETRY_INTERVAL_S = 1.0
# A line with this field is not a request: it says how many records the writer had to give up
# (held back longer than memory allows); the controller counts and logs them.
SPOOL_LOST_FIELD = "modelcenter_spool_lost"
# Longest error message kept; tracebacks are never kept (they can quote request content).
MAX_ERROR_CHARS = 2000


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, "") or default)
    except ValueError:
        return default


def _env_bool(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def slim_payload(payload: dict, keep_content: bool) -> dict:
    """A shallow copy of the payload without content fields and tracebacks (request path: cheap)."""
    record = dict(payload)
    model_map = record.get("model_map_information")
    if isinstance(model_map, dict) and "model_map_value" in model_map:
        # LiteLLM's cost-map entry for the model: static, about 6 KB, and not about this request.
        record["model_map_information"] = {"model_map_key": model_map.get("model_map_key")}
    if not keep_content:
        for field in CONTENT_FIELDS:
            record.pop(field, None)
    info = record.get("error_information")
    if isinstance(info, dict):
        info = dict(info)
        info.pop("traceback", None)
        message = info.get("error_message")
        if isinstance(message, str) and len(message) > MAX_ERROR_CHARS:
            info["error_message"] = message[:MAX_ERROR_CHARS]
        record["error_information"] = info
    error_str = record.get("error_str")
    if isinstance(error_str, str) and len(error_str) > MAX_ERROR_CHARS:
        record["error_str"] = error_str[:MAX_ERROR_CHARS]
    return record


def without_content(record: dict, reason: str) -> dict:
    """The record without its content fields, marked with why they are missing."""
    slim = {k: v for k, v in record.items() if k not in CONTENT_FIELDS}
    slim[CONTENT_DROPPED_FIELD] = reason
    return slim


class SpoolWriter:
    """One background thread per process writing queued records to the current spool file."""

    def __init__(
        self,
        directory: str,
        max_bytes: int,
        max_age_s: float,
        queue_size: int,
        max_pending_bytes: int = 64 * 1024 * 1024,
    ):
        self.directory = directory
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self.queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self.pid = os.getpid()
        self.started_ms = int(time.time() * 1000)
        self.seq = 0
        self.fd: int | None = None
        self.path: str | None = None
        self.size = 0
        self.opened_at = 0.0
        self.dropped = 0
        self.write_errors = 0
        # Lines not written yet (the disk was full): retried every RETRY_INTERVAL_S, in order.
        self.pending: list = []
        self.pending_bytes = 0
        self.max_pending_bytes = max_pending_bytes
        self.retry_at = 0.0
        # Records given up on (over max_pending_bytes); lost_unreported go in the next marker line.
        self.lost = 0
        self.lost_unreported = 0
        self.dropped_reported = 0
        # The count of the marker line waiting first in `pending`, if one does.
        self.marker_waiting = 0
        self.written = 0
        self._last_warning = 0.0
        # `pending` and the file are shared by the writer thread and, at exit, by the threads that
        # deliver late events (put() after stop) and by flush(): one writes at a time.
        self._write_lock = threading.RLock()
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="modelcenter-spool", daemon=True)
        self.thread.start()

    # --- request path -------------------------------------------------------------------------
    def put(self, record: dict) -> None:
        if self._stop.is_set():
            # At exit: LiteLLM's own atexit flush of its logging queue runs after ours (atexit is
            # last-in, first-out and this writer is made at the first event), so events it delivers
            # then are written here, on the caller's thread, instead of into a stopped queue.
            with self._write_lock:
                self._write_batch([record])
            return
        try:
            self.queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1
            self._warn("spool queue full: dropped an event (%d dropped so far)", self.dropped)

    # --- writer thread ------------------------------------------------------------------------
    def _run(self) -> None:
        # Wake every FLUSH_INTERVAL_S and write what queued up meanwhile: one wake-up (and one GIL
        # hand-over) per interval instead of per request keeps the request path's cost small.
        while not self._stop.wait(FLUSH_INTERVAL_S):
            with self._write_lock:
                while True:
                    batch = self._drain(None)
                    if not batch:
                        break
                    self._write_batch(batch)
                self._write_pending()  # lines held back by a failed write, after RETRY_INTERVAL_S

    def _drain(self, first: dict | None) -> list:
        batch = [] if first is None else [first]
        while len(batch) < 1000:
            try:
                batch.append(self.queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _write_batch(self, batch: list) -> None:
        for record in batch:
            try:
                line = _line(record)
                if len(line) > MAX_CONTENT_LINE_BYTES and any(f in record for f in CONTENT_FIELDS):
                    line = _line(without_content(record, "too large"))
            except Exception as error:  # a payload that cannot be serialised is logged, not raised
                self.write_errors += 1
                self._warn("cannot serialise a spool record: %s", error)
                continue
            if self.pending_bytes + len(line) > self.max_pending_bytes:
                # Held back too long (the disk stays full): this record is lost, and the next line
                # written says how many were (a marker the controller counts and logs).
                self.lost += 1
                self.lost_unreported += 1
                self._warn("spool cannot be written and %d bytes wait: lost %d records so far",
                           self.pending_bytes, self.lost)
                continue
            self.pending.append(line)
            self.pending_bytes += len(line)
        self._write_pending()

    def _write_pending(self, force: bool = False) -> None:
        """Writes the lines held back; what cannot be written now stays for the next try."""
        # Events the full queue refused (put() counts them on the request path) are reported too.
        refused = self.dropped - self.dropped_reported
        if refused > 0:
            self.dropped_reported += refused
            self.lost_unreported += refused
        if not self.pending and not self.lost_unreported:
            return
        if not force and time.time() < self.retry_at:
            return  # the last write failed (a full disk): do not hammer it every 50 ms
        if self.lost_unreported:
            # One marker line, first in line: a marker still waiting there takes the new count.
            total = self.lost_unreported + self.marker_waiting
            marker = _line({SPOOL_LOST_FIELD: total, "pid": self.pid,
                            "reason": "not written in time: the disk was full or unwritable, or the queue overflowed"})
            if self.marker_waiting:
                self.pending_bytes -= len(self.pending.pop(0))
            self.pending.insert(0, marker)
            self.pending_bytes += len(marker)
            self.marker_waiting = total
            self.lost_unreported = 0
        # One write per group of lines that fits in the current file; rotate between groups.
        while self.pending:
            group_bytes = 0
            count = 0
            for line in self.pending:
                if count and self._would_overflow(group_bytes + len(line)):
                    break
                group_bytes += len(line)
                count += 1
            written = self._write_lines(self.pending[:count], group_bytes)
            if written:
                self.pending_bytes -= sum(len(line) for line in self.pending[:written])
                del self.pending[:written]
                self.marker_waiting = 0  # a waiting marker is first: it is written
            if written < count:
                self.retry_at = time.time() + RETRY_INTERVAL_S
                return
        if self.retry_at:
            self.retry_at = 0.0
            log.warning("modelcenter_spool: the spool is written again (%d records lost meanwhile)",
                        self.lost)

    def _would_overflow(self, incoming: int) -> bool:
        current = self.size if self.fd is not None else 0
        return current + incoming > self.max_bytes

    def _write_lines(self, lines: list, length: int) -> int:
        """Appends whole lines; returns how many are in the file (a short write keeps no half line)."""
        data = b"".join(lines)
        done = 0
        try:
            fd = self._file_for(length)
            view = memoryview(data)
            while done < len(data):
                done += os.write(fd, view[done:])
            self.size += len(data)
            self.written += len(lines)
            return len(lines)
        except Exception as error:
            self.write_errors += 1
            self._warn("cannot write %d spool records to %s (kept in memory, retried): %s",
                       len(lines), self.path, error)
        # A short write (the disk filled up mid-line): cut the file back to the last whole line,
        # so the reader never sees half a line and the rest is written after it on the next try.
        whole = 0
        kept = 0
        for line in lines:
            if kept + len(line) > done:
                break
            kept += len(line)
            whole += 1
        if self.fd is not None and done > kept:
            try:
                os.ftruncate(self.fd, self.size + kept)
            except OSError:
                self._close()  # cannot cut it: never append after half a line; next file
        self.size += kept
        self.written += whole
        return whole

    def _file_for(self, incoming: int) -> int:
        now = time.time()
        if self.fd is not None:
            too_big = self.size > 0 and self.size + incoming > self.max_bytes
            too_old = now - self.opened_at > self.max_age_s
            if too_big or too_old or not self._still_there():
                self._close()
        if self.fd is None:
            os.makedirs(self.directory, exist_ok=True)
            self.path = os.path.join(
                self.directory, f"spool-{self.started_ms}-{self.pid}-{self.seq:06d}.jsonl"
            )
            self.seq += 1
            self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            self.size = os.fstat(self.fd).st_size
            self.opened_at = now
        return self.fd

    def _still_there(self) -> bool:
        """False when the file was removed under us (then the next batch goes to a new file)."""
        try:
            return os.stat(self.path).st_ino == os.fstat(self.fd).st_ino
        except OSError:
            return False

    def _close(self) -> None:
        if self.fd is not None:
            try:
                os.close(self.fd)
            except OSError:
                pass
        self.fd = None

    def flush(self, timeout_s: float = 5.0) -> None:
        """Writes what is queued (at process exit). Runs on the caller's thread."""
        deadline = time.time() + timeout_s
        with self._write_lock:
            while time.time() < deadline:
                batch = self._drain(None)
                if not batch:
                    break
                self._write_batch(batch)
            self._write_pending(force=True)
            if not self.pending:
                return
            self.lost += len(self.pending)
            log.warning("modelcenter_spool: exiting with %d records not written (disk full?); "
                        "%d records lost in all", len(self.pending), self.lost)

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(timeout=2)
        self.flush()
        with self._write_lock:
            self._close()

    def _warn(self, message: str, *args: Any) -> None:
        now = time.time()
        if now - self._last_warning >= 10:  # at most one warning per 10 s per process
            self._last_warning = now
            log.warning("modelcenter_spool: " + message, *args)


# One writer per process and directory, shared by both instances: two writers in one process
# could pick the same file name, and a hand-wired config may list both instances.
_writers: dict = {}
_writers_lock = threading.Lock()


def _writer_for(directory: str | None) -> SpoolWriter:
    directory = directory or os.environ.get(
        "MODELCENTER_SPOOL_DIR", os.path.join(os.getcwd(), "modelcenter-spool")
    )
    writer = _writers.get(directory)
    if writer is not None and writer.pid == os.getpid():
        return writer
    with _writers_lock:  # first event in this process (or first after a fork)
        writer = _writers.get(directory)
        if writer is None or writer.pid != os.getpid():
            writer = SpoolWriter(
                directory,
                max_bytes=_env_int("MODELCENTER_SPOOL_MAX_BYTES", 64 * 1024 * 1024),
                max_age_s=float(_env_int("MODELCENTER_SPOOL_MAX_AGE_S", 3600)),
                queue_size=_env_int("MODELCENTER_SPOOL_QUEUE", 50_000),
                max_pending_bytes=_env_int("MODELCENTER_SPOOL_PENDING_BYTES", 64 * 1024 * 1024),
            )
            atexit.register(writer.stop)
            _writers[directory] = writer
    return writer


class ModelCenterSpool(CustomLogger):
    """LiteLLM callback: success and failure events, sync and async, go to the spool.

    keep_content: True keeps prompts and responses; None (the default instance) follows
    MODELCENTER_SPOOL_KEEP_CONTENT; False never keeps them.
    """

    def __init__(
        self, directory: str | None = None, keep_content: bool | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.directory = directory
        self.keep_content = keep_content
        self._writer: SpoolWriter | None = None

    def writer(self) -> SpoolWriter:
        writer = self._writer  # the request path: no lookup, no syscall
        if writer is None or writer.pid != os.getpid():
            writer = self._writer = _writer_for(self.directory)
        return writer

    def _keeps_content(self) -> bool:
        if self.keep_content is None:
            return _env_bool("MODELCENTER_SPOOL_KEEP_CONTENT")
        return self.keep_content

    def _record(self, kwargs: Any) -> None:
        try:
            payload = kwargs.get("standard_logging_object") if isinstance(kwargs, dict) else None
            if not isinstance(payload, dict):
                return
            self.writer().put(slim_payload(payload, self._keeps_content()))
        except Exception as error:  # never raise into LiteLLM
            log.warning("modelcenter_spool: could not queue an event: %s", error)

    def log_success_event(self, kwargs, response_obj, start_time, end_time):
        self._record(kwargs)

    def log_failure_event(self, kwargs, response_obj, start_time, end_time):
        self._record(kwargs)

    async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
        self._record(kwargs)

    async def async_log_failure_event(self, kwargs, response_obj, start_time, end_time):
        self._record(kwargs)


# Figures only, unless MODELCENTER_SPOOL_KEEP_CONTENT=1 (wired by default).
proxy_handler_instance = ModelCenterSpool()
# Figures and content (wired when the policies set spend.keep_content).
content_handler_instance = ModelCenterSpool(keep_content=True)
