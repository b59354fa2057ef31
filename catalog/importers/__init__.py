"""Product import from CSV or JSON Lines, for the CLI, browser uploads and the API.

- files.py: what is wrong with a file as a whole (binary, not UTF-8 with the line and
  byte offset, a quote left open at its end, a cell too large to read, no `sku` column)
  is found before anything is written: such a file imports nothing and says why (the
  CLI exits 2). Then the records of a CSV or JSON Lines file, with their line numbers.
- rows.py: the row rules every importer shares (the API too): a bad row is reported
  with its line number and skipped. Lengths come from the model's column sizes.
- writing.py: rows are written in chunks (one SELECT for the chunk's existing SKUs,
  one INSERT .. ON CONFLICT UPDATE for the new and changed ones); a chunk the database
  refuses is written again row by row, so only the refused row is lost. Images become
  intake jobs after their product is saved, so an image that fails, or a source that
  is not a valid URL or path, never loses its product.
- runs.py: an ImportRun for a file (CLI, browser upload); it always ends `done` or
  `failed` with its reason, its counts covering what was committed.
"""

from catalog.importers.files import ImportFileError, detect_format, read_records
from catalog.importers.rows import ImportReport, ProductRow, RowError, parse_row
from catalog.importers.runs import (
    import_file,
    import_run_create,
    import_run_execute,
    import_run_execute_stored,
    import_run_fail,
)
from catalog.importers.writing import CHUNK_SIZE, import_rows

__all__ = [
    "CHUNK_SIZE",
    "ImportFileError",
    "ImportReport",
    "ProductRow",
    "RowError",
    "detect_format",
    "import_file",
    "import_rows",
    "import_run_create",
    "import_run_execute",
    "import_run_execute_stored",
    "import_run_fail",
    "parse_row",
    "read_records",
]
