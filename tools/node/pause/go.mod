module model-cache/tools/node/pause

go 1.26.0
