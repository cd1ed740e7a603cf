"""What is known about one request, below the strategies that read it and the
rooms that gather it: finding (one thing to say about a pod), cluster (the
facts the lookups found), model (the model as a namespace sees it), use (what
a pod does with the cache), marker (the model.cache/injected annotation)."""
