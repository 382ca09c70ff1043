from lab.lessons import import_lesson_modules

import_lesson_modules(__name__)
