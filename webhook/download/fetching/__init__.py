"""Getting bytes: the transfer engine that moves a model's files from a source
into the partial directory (one stream per file, or ranged parts for large
ones), with the one retry policy and the messages for unreachable origins.
Sources (download/sources/) say what there is to fetch; this room fetches it."""
