module github.com/shiftboss/shiftboss/sdk/go

go 1.24
