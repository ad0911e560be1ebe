"""What each teaching platform takes from gradeconv, one module per platform.

- gradescope_zip: the autograder zip Gradescope builds its image from
  (the results.json itself is gradeconv.reports.gradescope).
- prairielearn: /grade/results/results.json of PrairieLearn's external grader.
- canvas: a CSV that Canvas's gradebook import accepts.
"""
