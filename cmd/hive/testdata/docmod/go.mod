module example.com/docmod

go 1.22
