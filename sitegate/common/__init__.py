"""What both programs use and neither owns: CLI rendering, site-file checks, periods."""
