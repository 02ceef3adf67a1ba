"""The HTTP routes, one module per resource; ``serve/app.py`` includes their routers.

| module    | routes                                                                  | auth          |
|-----------|-------------------------------------------------------------------------|---------------|
| health    | ``/v2/health/live``, ``/v2/health/ready``, ``/v2``                      | public / read |
| v2        | ``/v2/models/{name}[/versions/{v}][/ready|/infer]``                     | read / predict|
| v1        | ``/v1/models/{name}[/versions/{v}]:predict``                            | predict       |
| admin     | ``/v2/repository/…``, ``/v1/models/{name}/canary``                      | admin / read  |
| ops       | ``/metrics``, ``/openapi.json``                                         | read / public |
"""
