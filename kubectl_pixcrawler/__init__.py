"""`kubectl pixcrawler`: a kubectl plugin to submit DatasetJobs and watch them to their end."""
