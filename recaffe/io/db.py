"""Key-value databases of ``Datum`` records: LMDB (via ``lmdb``) and LevelDB.

Caffe's ``Data`` layer and tools store one serialized ``Datum`` per key and read
them in key order. LMDB needs the optional ``lmdb`` package
(``pip install 'recaffe[lmdb]'``); LevelDB needs ``plyvel``.

- :func:`open_db` gives a :class:`DBCursor`: ``key()``/``value()`` of the
  current record, ``next()`` (wraps around to the first record at the end),
  ``close()``.
- :class:`LMDBWriter` writes records in batches, growing the map as needed.
"""

from __future__ import annotations

import os

from recaffe.errors import DataError

__all__ = ["LEVELDB", "LMDB", "DBCursor", "LMDBWriter", "import_lmdb", "open_db"]

LEVELDB = 0
LMDB = 1

_LMDB_HINT = "pip install lmdb (or pip install 'recaffe[lmdb]')"


def import_lmdb():
    try:
        import lmdb  # noqa: PLC0415
    except ImportError:
        raise DataError(
            f"LMDB databases need the 'lmdb' package, which is not installed: "
            f"{_LMDB_HINT}"
        ) from None
    return lmdb


class DBCursor:
    """Reads a database's records in key order, wrapping around at the end."""

    def __init__(self, source: str):
        self.source = source
        self._key = None
        self._value = None

    def key(self) -> bytes:
        return self._key

    def value(self) -> bytes:
        return self._value

    def next(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:  # noqa: SIM105 - no contextlib lookup in __del__ at shutdown
            self.close()
        except Exception:  # noqa: BLE001, S110 - interpreter shutdown
            pass


# py-lmdb refuses to open one environment twice in a process, yet a train net
# and a test net often read the same database: readers share one environment
# per real path, counted, and each gets its own read transaction.
_ENVS: dict[str, list] = {}


def _acquire_env(source: str):
    lmdb = import_lmdb()
    key = os.path.realpath(source)
    entry = _ENVS.get(key)
    if entry is None:
        env = lmdb.open(source, readonly=True, lock=False, readahead=False,
                        subdir=os.path.isdir(source), max_readers=512)
        entry = _ENVS[key] = [env, 0]
    entry[1] += 1
    return key, entry[0]


def _release_env(key: str) -> None:
    entry = _ENVS.get(key)
    if entry is None:
        return
    entry[1] -= 1
    if entry[1] <= 0:
        del _ENVS[key]
        entry[0].close()


class _LMDBCursor(DBCursor):
    def __init__(self, source: str):
        super().__init__(source)
        lmdb = import_lmdb()
        self._env_key = self._txn = self._cur = None
        if not os.path.exists(source):
            raise DataError(f"LMDB '{source}' does not exist")
        try:
            self._env_key, env = _acquire_env(source)
            self._txn = env.begin(buffers=False)
            self._cur = self._txn.cursor()
        except lmdb.Error as exc:
            self.close()
            raise DataError(f"LMDB '{source}': cannot open ({exc})") from None
        if not self._cur.first():
            self.close()
            raise DataError(f"LMDB '{source}' is empty (no records)")
        self._load()

    def _load(self) -> None:
        self._key = self._cur.key()
        self._value = self._cur.value()

    def next(self) -> None:
        if not self._cur.next():
            self._cur.first()
        self._load()

    def close(self) -> None:
        if self._cur is not None:
            self._cur.close()
            self._cur = None
        if self._txn is not None:
            self._txn.abort()
            self._txn = None
        if self._env_key is not None:
            _release_env(self._env_key)
            self._env_key = None


class _LevelDBCursor(DBCursor):
    def __init__(self, source: str):
        super().__init__(source)
        self._db = self._it = None
        try:
            import plyvel  # noqa: PLC0415
        except ImportError:
            hint = ""
            if os.path.exists(os.path.join(source, "data.mdb")):
                hint = " (this looks like an LMDB: set data_param { backend: LMDB })"
            raise DataError(
                f"LevelDB '{source}': LevelDB is not supported unless the 'plyvel' "
                f"package is installed (pip install plyvel), or convert the data "
                f"to LMDB{hint}"
            ) from None
        try:
            self._db = plyvel.DB(source, create_if_missing=False)
        except Exception as exc:  # noqa: BLE001 - plyvel raises its own types
            raise DataError(f"LevelDB '{source}': cannot open ({exc})") from None
        self._restart()
        if self._key is None:
            self.close()
            raise DataError(f"LevelDB '{source}' is empty (no records)")

    def _restart(self) -> None:
        if self._it is not None:
            self._it.close()
        self._it = self._db.iterator()
        try:
            self._key, self._value = next(self._it)
        except StopIteration:
            self._key = self._value = None

    def next(self) -> None:
        try:
            self._key, self._value = next(self._it)
        except StopIteration:
            self._restart()

    def close(self) -> None:
        if self._it is not None:
            self._it.close()
            self._it = None
        if self._db is not None:
            self._db.close()
            self._db = None


def open_db(source: str, backend: int = LMDB) -> DBCursor:
    """A cursor on the first record of ``source`` (raises DataError if empty)."""
    if not source:
        raise DataError("no database source given")
    if int(backend) == LMDB:
        return _LMDBCursor(source)
    if int(backend) == LEVELDB:
        return _LevelDBCursor(source)
    raise DataError(f"unknown database backend {backend}")


class LMDBWriter:
    """Writes key/value records to a new LMDB, committing every ``batch`` puts."""

    def __init__(self, path: str, overwrite: bool = False, batch: int = 1000):
        lmdb = import_lmdb()
        self._lmdb = lmdb
        if os.path.realpath(path) in _ENVS:
            raise DataError(f"'{path}' is open for reading (by a Data layer); close "
                            "it before writing")
        if os.path.exists(path):
            if not overwrite and (not os.path.isdir(path) or os.listdir(path)):
                raise DataError(
                    f"'{path}' already exists; remove it or pass overwrite=True"
                )
            if overwrite and os.path.isdir(path):
                for name in ("data.mdb", "lock.mdb"):
                    p = os.path.join(path, name)
                    if os.path.exists(p):
                        os.remove(p)
        self.path = path
        self._map_size = 1 << 26
        try:
            self._env = lmdb.open(path, map_size=self._map_size, subdir=True)
        except lmdb.Error as exc:
            raise DataError(f"LMDB '{path}': cannot create ({exc})") from None
        self._pending: list[tuple[bytes, bytes]] = []
        self._batch = batch
        self.count = 0

    def put(self, key: bytes, value: bytes) -> None:
        self._pending.append((key, value))
        self.count += 1
        if len(self._pending) >= self._batch:
            self.commit()

    def commit(self) -> None:
        while self._pending:
            try:
                with self._env.begin(write=True) as txn:
                    for k, v in self._pending:
                        txn.put(k, v)
                self._pending.clear()
            except self._lmdb.MapFullError:
                self._map_size *= 2
                self._env.set_mapsize(self._map_size)

    def close(self) -> None:
        if self._env is not None:
            self.commit()
            self._env.close()
            self._env = None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *rest) -> None:
        if exc_type is not None:
            self._pending.clear()
        self.close()
