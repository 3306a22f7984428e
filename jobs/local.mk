# jobs/: placeholder
