"""lsray: lip-sync dubbing of video catalogs on Ray."""
