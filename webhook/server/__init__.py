"""The thin shell: Flask routes (app), gunicorn (gunicorn), TLS (tls), metrics, logs."""
