#!/bin/sh
pg_isready -U "$POSTGRES_USER" -d "$POSTGRES_DB" -h 127.0.0.1
