"""Operations: commands that drive every app at once (benchmarks, the load test, re-encrypting secrets at
rest) and what they share (`localhost`) or serve (`bench_views`). It sits above the apps, as urls.py does."""
