{# dbt_utils' expression_is_true, kept in the project so that no package is needed #}
{% test expression_is_true(model, expression, column_name=None) %}
select 1
from {{ model }}
{% if column_name is none %}
where not({{ expression }})
{%- else %}
where not({{ column_name }} {{ expression }})
{%- endif %}
{% endtest %}
