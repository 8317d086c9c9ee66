"""Reading data files in chunks: CSV and Parquet through pyarrow, NPZ through numpy.

Each reader yields `{column name: numpy array}` chunks of at most `chunk_rows` rows, so
a profile of a file larger than memory is built in bounded memory. String columns come
back as fixed-width unicode arrays (missing values as ""), numbers as float64 or int64
(missing numbers as NaN).
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
from numpy.typing import NDArray

Chunk = dict[str, NDArray[Any]]

DEFAULT_CHUNK_ROWS = 65536
FORMATS = ("csv", "parquet", "npz")


class ReadError(ValueError):
    """A data file that cannot be read."""


def detect_format(path: str | Path) -> str:
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix in ("csv", "txt"):
        return "csv"
    if suffix in ("parquet", "pq"):
        return "parquet"
    if suffix == "npz":
        return "npz"
    raise ReadError(f"{path}: unknown data format {suffix!r} (expected .csv, .parquet or .npz)")


@dataclass(frozen=True)
class Extent:
    """How much a read has to go through, in the unit its progress is reported in."""

    total: int | None
    unit: str  # "rows", or "B" for CSV, whose rows are not known without reading it


def extent(path: str | Path, file_format: str | None = None) -> Extent:
    """The size of a read up front, from metadata only: rows of Parquet and NPZ, bytes
    of CSV (counting its rows would read it twice)."""
    file_format = file_format or detect_format(path)
    if file_format == "csv":
        try:
            return Extent(Path(path).stat().st_size, "B")
        except OSError:
            return Extent(None, "B")
    return Extent(count_rows(path, file_format), "rows")


def count_rows(path: str | Path, file_format: str | None = None) -> int | None:
    """Rows in the file when that is cheap to know (Parquet, NPZ); None for CSV."""
    file_format = file_format or detect_format(path)
    try:
        if file_format == "parquet":
            return int(pq.ParquetFile(path).metadata.num_rows)
        if file_format == "npz":
            with zipfile.ZipFile(path) as archive:
                members = [n for n in archive.namelist() if n.endswith(".npy")]
                if not members:
                    return 0
                with archive.open(members[0]) as stream:
                    shape, _ = _npy_header(stream, members[0], path)
                    return shape[0] if shape else 1
    except (OSError, ValueError, pa.ArrowException, zipfile.BadZipFile):
        return None
    return None


def read_chunks(
    path: str | Path,
    columns: list[str] | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    file_format: str | None = None,
    text_types: dict[str, str] | None = None,
    progress: Callable[[int], object] | None = None,
) -> Iterator[Chunk]:
    """Chunks of the file. `text_types` (column -> "numeric" or "categorical") fixes
    the types of CSV columns, which a streaming reader otherwise infers from the first
    block alone (an integer-looking first block would make a later "1.5" an error).
    `progress` is called with the amount read since its last call, in the unit of
    `extent()`: bytes for CSV, rows otherwise."""
    file_format = file_format or detect_format(path)
    if not Path(path).exists():
        raise ReadError(f"{path}: no such file")
    report = progress or _ignore
    if file_format == "csv":
        return _csv_chunks(path, columns, chunk_rows, text_types or {}, report)
    if file_format == "parquet":
        return _parquet_chunks(path, columns, chunk_rows, report)
    if file_format == "npz":
        return _npz_chunks(path, columns, chunk_rows, report)
    raise ReadError(f"unknown data format {file_format!r} (expected one of {', '.join(FORMATS)})")


def read_all(
    path: str | Path, columns: list[str] | None = None, file_format: str | None = None
) -> Chunk:
    """The whole file as one chunk (types as the file gives or a reader infers them)."""
    return _concatenate(read_chunks(path, columns, DEFAULT_CHUNK_ROWS, file_format))


@dataclass(frozen=True)
class Window:
    columns: Chunk
    invalid_rows: int = 0  # CSV rows of the wrong width, skipped


def read_window(
    path: str | Path, types: Mapping[str, str], file_format: str | None = None
) -> Window:
    """A window to evaluate, whole: every column of the file, and no value can fail it.

    `types` (feature -> "numeric" or "categorical") come from the profile. A CSV reader
    would otherwise infer each column's type from its first block and fail on a later
    value that does not fit ('abc' at row 9,000 of a numeric column), while the same
    value at row 10 would make the column text. So every CSV column is read as text:
    the engine parses numeric features and counts what is not a number, wherever it is,
    and the spellings of a missing value that the CSV reader knows ("", "NA", "null",
    ...) count as missing in numeric features. A row of the wrong width is skipped and
    counted. Parquet and NPZ carry their types.
    """
    file_format = file_format or detect_format(path)
    if file_format != "csv":
        return Window(read_all(path, file_format=file_format))
    if not Path(path).exists():
        raise ReadError(f"{path}: no such file")
    numeric = {name for name, kind in types.items() if kind == "numeric"}
    skipped: list[int] = []
    columns = _concatenate(_csv_text_chunks(path, numeric, skipped))
    return Window(columns, len(skipped))


def _concatenate(chunks: Iterator[Chunk]) -> Chunk:
    parts: dict[str, list[NDArray[Any]]] = {}
    for chunk in chunks:
        for name, values in chunk.items():
            parts.setdefault(name, []).append(values)
    return {name: np.concatenate(values) for name, values in parts.items()}


def _column_to_numpy(column: pa.Array | pa.ChunkedArray) -> NDArray[Any]:
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        filled = pc.fill_null(column, "")
        return np.asarray(filled.to_numpy(zero_copy_only=False).astype(str))
    if pa.types.is_dictionary(column.type):
        return _column_to_numpy(pc.cast(column, pa.string()))
    if pa.types.is_boolean(column.type):
        return np.asarray(column.to_numpy(zero_copy_only=False)).astype(np.int64)
    if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
        if column.null_count:
            return np.asarray(pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False))
        return np.asarray(column.to_numpy(zero_copy_only=False))
    return np.asarray(pc.cast(column, pa.string()).to_numpy(zero_copy_only=False).astype(str))


def _select(table_columns: list[str], wanted: list[str] | None, path: str | Path) -> list[str]:
    if wanted is None:
        return table_columns
    missing = [name for name in wanted if name not in table_columns]
    if missing:
        raise ReadError(f"{path}: no column named {', '.join(missing)}")
    return wanted


def _ignore(amount: int) -> None:
    pass


def _csv_chunks(
    path: str | Path,
    columns: list[str] | None,
    chunk_rows: int,
    text_types: dict[str, str],
    progress: Callable[[int], object],
) -> Iterator[Chunk]:
    arrow_types = {
        name: pa.float64() if kind == "numeric" else pa.string()
        for name, kind in text_types.items()
    }

    def open_reader(source: str | Path | pa.NativeFile, include: list[str]) -> Any:
        try:
            return pcsv.open_csv(
                source,
                read_options=pcsv.ReadOptions(block_size=1 << 22),
                convert_options=pcsv.ConvertOptions(
                    strings_can_be_null=False,
                    include_columns=include,
                    column_types={k: v for k, v in arrow_types.items() if k in include},
                ),
            )
        except (pa.ArrowException, OSError) as error:
            raise ReadError(f"{path}: cannot read CSV ({error})") from None

    names = _select(open_reader(path, []).schema.names, columns, path)
    # only the wanted columns are parsed; the file's position tells the progress
    with pa.OSFile(str(path)) as source:
        reader = open_reader(source, names)
        types = {field.name: field.type for field in reader.schema}
        position = 0
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                progress(Path(path).stat().st_size - position)
                return
            except pa.ArrowInvalid as error:
                # a value that does not fit its column's type (given or inferred)
                raise ReadError(f"{path}: CSV value does not fit its column ({error})") from None
            read = source.tell()
            yield from _slices(batch, names, types, chunk_rows)
            # counted once the consumer is done with it (a generator resumes only then)
            progress(read - position)
            position = read


def _slices(
    batch: pa.RecordBatch, names: list[str], types: dict[str, pa.DataType], chunk_rows: int
) -> Iterator[Chunk]:
    for start in range(0, batch.num_rows, chunk_rows):
        part = batch.slice(start, chunk_rows)
        yield {name: _column_to_numpy(part.column(name).cast(types[name])) for name in names}


def _csv_text_chunks(path: str | Path, numeric: set[str], skipped: list[int]) -> Iterator[Chunk]:
    """Every column as text, never inferred; in `numeric` columns, missing values as "".
    Rows of the wrong width are skipped; their line numbers are appended to `skipped`."""
    missing = pa.array(pcsv.ConvertOptions().null_values, pa.string())

    def skip(row: Any) -> str:
        skipped.append(row.number if row.number is not None else -1)
        return "skip"

    def open_reader(column_types: dict[str, pa.DataType]) -> pcsv.CSVStreamingReader:
        try:
            return pcsv.open_csv(
                path,
                read_options=pcsv.ReadOptions(block_size=1 << 22),
                parse_options=pcsv.ParseOptions(invalid_row_handler=skip),
                convert_options=pcsv.ConvertOptions(
                    strings_can_be_null=False, column_types=column_types
                ),
            )
        except (pa.ArrowException, OSError) as error:
            raise ReadError(f"{path}: cannot read CSV ({error})") from None

    # the header names the columns; the second reader reads them all as text
    names = open_reader({}).schema.names
    reader = open_reader(dict.fromkeys(names, pa.string()))
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            return
        except pa.ArrowInvalid as error:
            # only the file's structure is left to fail (an unterminated quote)
            raise ReadError(f"{path}: cannot read CSV ({error})") from None
        chunk: Chunk = {}
        for name in names:
            column = batch.column(name)
            if name in numeric:
                column = pc.if_else(pc.is_in(column, value_set=missing), "", column)
            chunk[name] = _column_to_numpy(column)
        yield chunk


def _parquet_chunks(
    path: str | Path, columns: list[str] | None, chunk_rows: int, progress: Callable[[int], object]
) -> Iterator[Chunk]:
    try:
        # no pre-buffering: with it, pyarrow keeps every row group it has read (1 GB for
        # a 1M x 100 file); without it, memory stays at one row group
        parquet = pq.ParquetFile(path, pre_buffer=False)
    except (pa.ArrowException, OSError) as error:
        raise ReadError(f"{path}: cannot read Parquet ({error})") from None
    names = _select(parquet.schema_arrow.names, columns, path)
    for batch in parquet.iter_batches(batch_size=chunk_rows, columns=names):
        yield {name: _column_to_numpy(batch.column(name)) for name in names}
        progress(batch.num_rows)


def _npz_chunks(
    path: str | Path, columns: list[str] | None, chunk_rows: int, progress: Callable[[int], object]
) -> Iterator[Chunk]:
    """Stream every member in step: each is a 1-D .npy read sequentially from the zip
    (stored or deflated), so only one chunk of each array is in memory at a time."""
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as error:
        raise ReadError(f"{path}: cannot read NPZ ({error})") from None
    with archive:
        members = {n[: -len(".npy")]: n for n in archive.namelist() if n.endswith(".npy")}
        names = _select(list(members), columns, path)
        streams = []
        lengths: dict[str, int] = {}
        for name in names:
            stream = archive.open(members[name])
            shape, dtype = _npy_header(stream, name, path)
            lengths[name] = shape[0] if shape else 1
            streams.append((name, stream, dtype))
        if len(set(lengths.values())) > 1:
            raise ReadError(f"{path}: arrays differ in length: {lengths}")
        total = next(iter(lengths.values()), 0)
        for start in range(0, total, chunk_rows):
            rows = min(chunk_rows, total - start)
            yield {
                name: np.frombuffer(stream.read(rows * dtype.itemsize), dtype=dtype, count=rows)
                for name, stream, dtype in streams
            }
            progress(rows)


def _npy_header(stream: Any, name: str, path: str | Path) -> tuple[tuple[int, ...], np.dtype[Any]]:
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, _fortran, dtype = np.lib.format.read_array_header_1_0(stream)
        else:
            shape, _fortran, dtype = np.lib.format.read_array_header_2_0(stream)
    except ValueError as error:
        raise ReadError(f"{path}: array {name!r} is not a .npy array ({error})") from None
    if dtype.hasobject:
        raise ReadError(f"{path}: array {name!r} holds Python objects, which are never loaded")
    if len(shape) > 1 and int(np.prod(shape[1:])) != 1:
        raise ReadError(f"{path}: array {name!r} has shape {shape}; one 1-D array per feature")
    return tuple(int(s) for s in shape), dtype
