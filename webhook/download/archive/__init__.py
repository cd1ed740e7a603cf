"""Archives: which kinds there are, what volume each needs, and unpacking them
into the partial directory. Only about archives: nothing here fetches."""
