# Sourced by the benchmarks. Some virtual machines (this project's own: Firecracker with a
# virtio balloon) report every freed guest page to the host at once, and the host unmaps it: the
# next first write to that page costs a host fault. Measured here: writing 1 GiB into the page
# cache ran at 450-580 MiB/s on such pages against ~3,000 MiB/s on pages still mapped. Which
# side of a comparison gets the unmapped pages is chance, so the cold-read ratio moved between
# 0.50x and 1.05x on one build. While a benchmark runs, `hold_freed_pages` asks the kernel to
# report only pages free for a minute (`page_reporting.min_free_ms`), and puts the setting back
# on exit. BENCH_KEEP_PAGE_REPORTING=1 leaves it alone, to measure the machine as it is.

PAGE_REPORTING_PARAM=/sys/module/page_reporting/parameters/min_free_ms
PAGE_REPORTING_SAVED=

hold_freed_pages() {
  if [ -n "${BENCH_KEEP_PAGE_REPORTING:-}" ]; then
    [ -r "$PAGE_REPORTING_PARAM" ] &&
      echo "free page reporting to the host left as it is (min_free_ms=$(cat "$PAGE_REPORTING_PARAM"))"
    return 0
  fi
  [ -w "$PAGE_REPORTING_PARAM" ] || return 0
  PAGE_REPORTING_SAVED=$(cat "$PAGE_REPORTING_PARAM")
  echo 60000 > "$PAGE_REPORTING_PARAM" || { PAGE_REPORTING_SAVED=; return 0; }
  echo "free page reporting to the host deferred for the run (min_free_ms $PAGE_REPORTING_SAVED -> 60000; BENCH_KEEP_PAGE_REPORTING=1 to keep it)"
}

restore_freed_pages() {
  if [ -n "$PAGE_REPORTING_SAVED" ]; then
    echo "$PAGE_REPORTING_SAVED" > "$PAGE_REPORTING_PARAM" || true
    PAGE_REPORTING_SAVED=
  fi
}
